"""The incident engine: hold, one incident per rule and subject, flapping, resolve, escalate, acknowledge.

Runs on the server's event loop. Signals come from the ingest writer after each commit (a
condition began / ended). A condition must last its rule's hold time before an incident opens;
while an incident is open, the same condition again is the same incident. When the condition
clears, the incident resolves after ``resolve_hold`` — a condition that comes back before that
keeps it open and counts a re-activation; ``flap_threshold`` of those within ``flap_window`` mark
it *flapping* (told once, then resolved only after a full quiet window). Escalation and reminders
run from :meth:`tick`, which also re-asks the pipeline for held incidents.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque

from ..db.models import Incident
from ..notify import Receiver
from ..notify.base import Notice
from ..notify.delivery import DeliveryOptions, Dispatcher
from ..settings import Settings
from . import acklink
from .conditions import Condition, Signal
from .pipeline import chain_of, decide, route_for
from .rules import RULES
from .store import IncidentStore, ZoneFacts

log = logging.getLogger("zonewatch.incidents")
Key = tuple[str, str]


class IncidentEngine:
    def __init__(self, settings: Settings, store: IncidentStore, receivers: dict[str, Receiver],
                 secret: bytes) -> None:
        self.settings, self.alerts, self.store = settings, settings.alerts, store
        self.receivers, self.secret = receivers, secret
        self.dispatcher = Dispatcher(DeliveryOptions(attempts=self.alerts.retry_attempts,
                                                     first_delay=self.alerts.retry_first),
                                     on_result=self._delivered)
        self.open: dict[Key, Incident] = {}
        self.holds: dict[Key, asyncio.TimerHandle] = {}
        self.clearing: dict[Key, asyncio.TimerHandle] = {}
        self.flaps: dict[Key, deque[float]] = {}
        self.lock = asyncio.Lock()

    # -- life ------------------------------------------------------------------------------

    async def start(self, held_now: list[Condition]) -> None:
        """Load open incidents and reconcile them with what holds now (the server may have been down)."""
        for incident in await asyncio.to_thread(self.store.open_incidents):
            self.open[(incident.rule, incident.subject)] = incident
        now = time.time()
        current = {(c.rule, c.subject): c for c in held_now}
        for key in [k for k in self.open if k not in current]:
            self._clear(key, now)
        for condition in current.values():
            await self._activate(condition, now)

    async def close(self) -> None:
        for handle in [*self.holds.values(), *self.clearing.values()]:
            handle.cancel()
        await self.dispatcher.close()

    def handle(self, signals: list[Signal]) -> None:
        """Called on the loop (from the writer via call_soon_threadsafe)."""
        asyncio.get_running_loop().create_task(self._handle(signals))

    async def _handle(self, signals: list[Signal]) -> None:
        async with self.lock:
            for signal in signals:
                try:
                    if signal.active:
                        await self._activate(signal.condition, time.time())
                    else:
                        self._clear((signal.condition.rule, signal.condition.subject), signal.at)
                except Exception:  # one bad signal must not stop the others
                    log.exception("incident handling failed for %s", signal)

    # -- conditions ------------------------------------------------------------------------

    def _rule(self, name: str) -> tuple[bool, str, float]:
        rule, opts = RULES[name], self.alerts.rules.get(name)
        if opts is None:
            return True, rule.severity, rule.hold
        return opts.enabled, opts.severity or rule.severity, rule.hold if opts.hold is None else opts.hold

    async def _activate(self, condition: Condition, now: float) -> None:
        key = (condition.rule, condition.subject)
        enabled, severity, hold = self._rule(condition.rule)
        if not enabled or key in self.holds:
            return
        incident = self.open.get(key)
        if incident is not None:
            if key in self.clearing:  # came back before it resolved: same incident, one more re-activation
                self.clearing.pop(key).cancel()
                await self._reactivated(key, incident, now)
            return
        wait = max(0.0, condition.since + hold - now)
        if wait == 0:
            await self._open(condition, severity, now)
        else:
            loop = asyncio.get_running_loop()
            self.holds[key] = loop.call_later(wait, lambda: loop.create_task(self._held(condition, severity)))

    async def _held(self, condition: Condition, severity: str) -> None:
        async with self.lock:
            if self.holds.pop((condition.rule, condition.subject), None) is not None:
                await self._open(condition, severity, time.time())

    def _clear(self, key: Key, at: float) -> None:
        handle = self.holds.pop(key, None)
        if handle is not None:
            handle.cancel()  # a blip shorter than the hold: nobody is told
            return
        incident = self.open.get(key)
        if incident is None or key in self.clearing:
            return
        wait = self.alerts.flap_window if incident.flapping else self.alerts.resolve_hold
        loop = asyncio.get_running_loop()
        self.clearing[key] = loop.call_later(wait, lambda: loop.create_task(self._resolve(key, at)))

    async def _reactivated(self, key: Key, incident: Incident, now: float) -> None:
        window = self.flaps.setdefault(key, deque())
        window.append(now)
        while window and window[0] < now - self.alerts.flap_window:
            window.popleft()
        incident.reactivations += 1
        if not incident.flapping and len(window) >= self.alerts.flap_threshold:
            incident.flapping = True
            self.open[key] = await asyncio.to_thread(
                self.store.save, incident, "flapping",
                f"{len(window)} re-activations within {self.alerts.flap_window:.0f} s: held as one incident")
            if self.open[key].notified_at is not None:
                zone = await asyncio.to_thread(self.store.zone, incident.zone_id)
                await self._notify(self.open[key], "flapping", self._told_so_far(self.open[key], zone), zone)
        else:
            self.open[key] = await asyncio.to_thread(self.store.save, incident, "reactivated", "condition back")

    # -- incidents -------------------------------------------------------------------------

    async def _open(self, condition: Condition, severity: str, now: float) -> None:
        incident = Incident(rule=condition.rule, subject=condition.subject, label=condition.label,
                            severity=severity, zone_id=condition.zone_id, device_id=condition.device_id,
                            summary=condition.summary[:2000], started_at=condition.since, opened_at=now,
                            ack_nonce=secrets.token_hex(8))
        incident = await asyncio.to_thread(self.store.add, incident, "opened", condition.summary)
        self.open[(condition.rule, condition.subject)] = incident
        log.info("incident #%d opened: %s — %s", incident.id, condition.label, condition.summary)
        await self._route(incident, now)

    async def _route(self, incident: Incident, now: float) -> None:
        zone = await asyncio.to_thread(self.store.zone, incident.zone_id)
        decision = await asyncio.to_thread(decide, self.alerts, self.store, incident, zone,
                                           self._breach_open(incident.zone_id), now)
        key = (incident.rule, incident.subject)
        if decision.held:
            if incident.deferred != decision.held:
                incident.deferred, incident.urgency = decision.held, decision.urgency
                self.open[key] = await asyncio.to_thread(self.store.save, incident, decision.held, decision.detail)
            return
        incident.deferred, incident.urgency = "", decision.urgency
        incident.notified_at = incident.notified_at or now
        self.open[key] = incident = await asyncio.to_thread(self.store.save, incident, "routed", decision.detail)
        await self._notify(incident, "opened", list(decision.chain[0]), zone)

    def _breach_open(self, zone_id: int | None) -> int | None:
        for (rule, _), incident in self.open.items():
            if rule == "zone_breach" and incident.zone_id == zone_id and zone_id is not None:
                return incident.id
        return None

    async def _resolve(self, key: Key, at: float) -> None:
        async with self.lock:
            self.clearing.pop(key, None)
            incident = self.open.pop(key, None)
            if incident is None:
                return
            incident.status, incident.resolved_at, incident.ack_nonce = "resolved", at, ""
            incident = await asyncio.to_thread(self.store.save, incident, "resolved", "condition cleared")
            self.flaps.pop(key, None)
            log.info("incident #%d resolved: %s", incident.id, incident.label)
            if incident.notified_at is not None:
                zone = await asyncio.to_thread(self.store.zone, incident.zone_id)
                await self._notify(incident, "resolved", self._told_so_far(incident, zone), zone)

    async def acknowledge(self, incident_id: int, by: str, how: str = "api") -> Incident:
        async with self.lock:
            incident = next((i for i in self.open.values() if i.id == incident_id), None)
            if incident is None:
                stored = await asyncio.to_thread(self.store.get, incident_id)
                if stored is None:
                    raise LookupError(f"incident #{incident_id} does not exist")
                return stored  # resolved or already acknowledged: nothing to do
            if incident.status == "open":
                incident.status, incident.acked_at, incident.acked_by = "acknowledged", time.time(), by
                incident.ack_nonce = ""
                self.open[(incident.rule, incident.subject)] = incident = await asyncio.to_thread(
                    self.store.save, incident, "acknowledged", f"via {how}", actor=by)
            return incident

    async def acknowledge_link(self, token: str) -> Incident:
        incident_id, nonce = acklink.check_token(self.secret, token, time.time())
        current = next((i for i in self.open.values() if i.id == incident_id), None)
        if current is None or not current.ack_nonce or current.ack_nonce != nonce:
            stored = current or await asyncio.to_thread(self.store.get, incident_id)
            if stored is None:
                raise acklink.AckLinkError(404, f"incident #{incident_id} does not exist")
            raise acklink.AckLinkError(409, f"incident #{incident_id} is already {stored.status}; this link "
                                            "has been used")
        return await self.acknowledge(incident_id, "ack link", how="one-click link")

    # -- time ------------------------------------------------------------------------------

    async def tick(self) -> None:
        """Held incidents asked again; escalation and reminders for unacknowledged ones."""
        now = time.time()
        async with self.lock:
            for key, incident in list(self.open.items()):
                if key in self.clearing:
                    continue
                if incident.notified_at is None or incident.deferred:
                    await self._route(incident, now)
                    continue
                if incident.status != "open":
                    continue
                zone = await asyncio.to_thread(self.store.zone, incident.zone_id)
                if await asyncio.to_thread(self.store.active_silence, zone.code, incident.device_id, incident.rule,
                                           now):
                    continue  # silenced after it was told: no reminders, no escalation meanwhile
                chain = self._chain(incident, zone)
                since = incident.last_notified_at or incident.notified_at
                escalate_at = incident.notified_at + self.alerts.escalate_after * (incident.escalation_level + 1)
                if incident.escalation_level + 1 < len(chain) and now >= escalate_at:
                    incident.escalation_level += 1
                    nxt = list(chain[incident.escalation_level])
                    self.open[key] = incident = await asyncio.to_thread(
                        self.store.save, incident, "escalated", f"not acknowledged: telling {', '.join(nxt)}")
                    await self._notify(incident, "escalated", nxt, zone)
                elif self.alerts.renotify_every and now - since >= self.alerts.renotify_every:
                    await self._notify(incident, "reminder", self._told_so_far(incident, zone), zone)

    def _chain(self, incident: Incident, zone: ZoneFacts) -> tuple[tuple[str, ...], ...]:
        return chain_of(self.alerts, route_for(self.alerts, incident, zone))

    def _told_so_far(self, incident: Incident, zone: ZoneFacts) -> list[str]:
        """Everyone told so far (for reminders, flapping and resolved notices)."""
        return [n for level in self._chain(incident, zone)[: incident.escalation_level + 1] for n in level]

    # -- telling people ----------------------------------------------------------------------

    async def _notify(self, incident: Incident, kind: str, names: list[str], zone: ZoneFacts | None = None) -> None:
        zone = zone or await asyncio.to_thread(self.store.zone, incident.zone_id)
        receivers = [self.receivers[n] for n in names if n in self.receivers]
        if not receivers:
            return
        now = time.time()
        base = self.alerts.public_url.rstrip("/")
        ack_url = None
        if incident.status == "open" and incident.ack_nonce:
            token = acklink.make_token(self.secret, incident.id, incident.ack_nonce, now + self.alerts.ack_link_ttl)
            ack_url = f"{base}/ack/{token}"
        notice = Notice(kind=kind, incident_id=incident.id, rule=incident.rule, severity=incident.severity,
                        urgency=incident.urgency, zone_code=zone.code, zone_name=zone.name, region=zone.region,
                        subject=incident.label, summary=incident.summary, since=incident.started_at,
                        timezone=zone.timezone, url=f"{base}/api/v1/incidents/{incident.id}", ack_url=ack_url,
                        escalation_level=incident.escalation_level, resolved_at=incident.resolved_at)
        incident.last_notified_at = now
        if incident.status != "resolved":
            self.open[(incident.rule, incident.subject)] = await asyncio.to_thread(
                self.store.save, incident, "notified", f"{kind} → {', '.join(r.name for r in receivers)}")
        else:
            await asyncio.to_thread(self.store.event, incident.id, "notified",
                                    f"{kind} → {', '.join(r.name for r in receivers)}")
        self.dispatcher.dispatch(notice, receivers)

    async def _delivered(self, receiver: str, notice: Notice, attempt: int, ok: bool, detail: str) -> None:
        kind = "delivered" if ok else "delivery_failed"
        await asyncio.to_thread(self.store.event, int(notice.incident_id), kind,
                                f"{notice.kind}, attempt {attempt}: {detail}", receiver=receiver)
