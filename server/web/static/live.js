// Live updates for zonewatch pages over Server-Sent Events (/events). No framework, no build step.
// A zone or incident event updates what it can at once (a zone row's status, the fleet counts) and then
// re-reads the page and swaps in every [data-live] section by id, so order, filters and wording stay
// the server's. A resync event (events were dropped for a slow client) or a reconnect re-reads too.
(function () {
  "use strict";
  var statusEl = document.getElementById("live-status");
  var wordsEl = document.getElementById("live-words");
  if (!statusEl || !wordsEl || !window.EventSource || !window.fetch || !window.DOMParser) return;
  var words = JSON.parse(wordsEl.textContent);
  var body = document.body;
  var page = body.getAttribute("data-page");
  var myZone = body.getAttribute("data-zone") || "";
  var myZonePk = body.getAttribute("data-zone-pk") || "";
  var myIncident = body.getAttribute("data-incident") || "";
  var busy = false, again = false, timer = null, lastRefresh = 0, everOpen = false;

  function setState(state) {
    statusEl.setAttribute("data-state", state);
    statusEl.textContent = state === "connected" ? words.connected : state === "connecting" ? words.connecting : words.offline;
  }

  function refresh() {
    if (timer) return;
    var wait = Math.max(200, 1000 - (Date.now() - lastRefresh));
    timer = setTimeout(function () { timer = null; load(); }, wait);
  }

  function load() {
    if (busy) { again = true; return; }
    busy = true; lastRefresh = Date.now();
    fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) {
        if (r.redirected || r.status === 303) { location.reload(); return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (!html) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live][id]").forEach(function (el) {
          var fresh = doc.getElementById(el.id);
          if (fresh && fresh.outerHTML !== el.outerHTML) el.replaceWith(document.importNode(fresh, true));
        });
      })
      .catch(function () { /* the next event or reconnect tries again */ })
      .then(function () { busy = false; if (again) { again = false; refresh(); } });
  }

  function setZoneStatus(zone) {
    document.querySelectorAll("[data-zone-id]").forEach(function (row) {
      if (row.getAttribute("data-zone-id") !== zone.code) return;
      row.setAttribute("data-status", zone.status);
      var badge = row.querySelector("[data-role=status]");
      if (badge) {
        badge.className = "badge s-" + zone.status;
        badge.textContent = words.status[zone.status] || zone.status;
      }
    });
  }

  function relevantZone(zone) {
    if (page === "fleet") return true;
    if (page === "zone" || page === "device") return zone.code === myZone;
    return false;
  }

  function relevantIncident(inc) {
    if (page === "incidents" || page === "fleet") return true;
    if (page === "incident") return String(inc.id) === myIncident;
    if (page === "zone") return String(inc.zone_id) === myZonePk;
    return false;
  }

  function connect() {
    var source = new EventSource("/events");
    setState("connecting");
    source.onopen = function () {
      setState("connected");
      if (everOpen) refresh();  // back after a break: what changed meanwhile was not seen
      everOpen = true;
    };
    source.onerror = function () { setState(source.readyState === EventSource.CLOSED ? "offline" : "connecting"); };
    source.addEventListener("zone", function (e) {
      var zone = JSON.parse(e.data);
      setZoneStatus(zone);
      if (relevantZone(zone)) refresh();
    });
    source.addEventListener("counts", function (e) {
      if (page !== "fleet" || body.getAttribute("data-filtered") === "1") return;
      var counts = JSON.parse(e.data);
      Object.keys(counts).forEach(function (k) {
        var el = document.getElementById("count-" + k);
        if (el) el.textContent = counts[k];
      });
    });
    source.addEventListener("incident", function (e) {
      if (relevantIncident(JSON.parse(e.data))) refresh();
    });
    source.addEventListener("resync", refresh);
    window.addEventListener("pagehide", function () { source.close(); });
  }

  connect();
})();
