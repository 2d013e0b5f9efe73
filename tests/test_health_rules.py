"""The zone rule as a pure function: how devices that are still coming up are judged."""

from __future__ import annotations

import time

from server.health.rules import CheckView, DeviceView, PrinterView, ZoneView, evaluate_zone


def _kiosk(device_id: str, *, online=True, reported=True, printer="ok") -> DeviceView:
    now = time.time()
    device = DeviceView(id=device_id, name=device_id, role="kiosk", zone_id=1, online=online, online_since=now)
    if reported:
        device.last_seq = 1
        device.checks = {"kiosk": CheckView("kiosk", "ok", "running", now),
                         "portal": CheckView("network", "ok", "12 ms", now)}
        if printer:
            device.printers = {"P1": PrinterView("P1", status=printer, since=now)}
    return device


def test_an_agent_heard_only_by_its_birth_message_leaves_a_new_zone_unknown():
    zone = ZoneView(id=1, code="Z", name="Z")
    status, reasons = evaluate_zone(zone, [_kiosk("k1", reported=False)])
    assert status == "unknown"
    assert reasons == ["waiting for the first report from k1"]


def test_a_new_zone_waits_for_every_device_coming_up_before_calling_a_breach():
    zone = ZoneView(id=1, code="Z", name="Z")
    # k1 has reported but has no printer; k2 (which hosts the printer) is online and has not reported yet.
    status, reasons = evaluate_zone(zone, [_kiosk("k1", printer=None), _kiosk("k2", reported=False)])
    assert status == "unknown"
    assert reasons[0] == "waiting for the first report from k2"
    assert any(r.startswith("no working printer") for r in reasons[1:])


def test_once_judged_a_zone_is_not_hidden_by_a_device_coming_up():
    zone = ZoneView(id=1, code="Z", name="Z", status="meets")
    status, reasons = evaluate_zone(zone, [_kiosk("k1", printer="critical"), _kiosk("k2", reported=False)])
    assert status == "breach"
    assert any(r.startswith("no working printer") for r in reasons)


def test_a_pending_device_is_not_counted_as_a_failing_query_device():
    zone = ZoneView(id=1, code="Z", name="Z", status="meets")
    status, reasons = evaluate_zone(zone, [_kiosk("k1"), _kiosk("k2", reported=False)])
    assert (status, reasons) == ("meets", [])


def test_a_device_known_only_as_offline_is_judged():
    zone = ZoneView(id=1, code="Z", name="Z")
    status, reasons = evaluate_zone(zone, [_kiosk("k1", online=False, reported=False)])
    assert status == "breach"
    assert reasons[0].startswith("network down: no device in the zone heard")
