"""Which rules hold right now, for which subject — read from the health views after each commit.

The ingest writer calls :meth:`ConditionTracker.update` with the devices and zones a batch
touched; the tracker compares what holds now with what held before and returns the changes as
:class:`Signal` s (a condition began / ended, with the time it began as measured). Reading views,
not history rows, keeps this independent of how health is computed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..health.fleet import Fleet
from ..health.rules import DeviceView
from .rules import PRINTER_RULES


@dataclass(frozen=True, slots=True)
class Condition:
    rule: str
    subject: str  # zone:CODE, device:ID, printer:ID/NAME, check:ID/NAME
    since: float
    label: str  # what a person calls the subject: "printer HP-Hall-1 on Kiosk 1"
    summary: str
    zone_id: int | None
    device_id: str | None


@dataclass(frozen=True, slots=True)
class Signal:
    condition: Condition
    active: bool
    at: float


@dataclass
class ConditionTracker:
    held: dict[tuple[str, str], Condition] = field(default_factory=dict)
    #: subject owner (zone:ID / device:ID) → keys it holds, to diff one owner at a time
    owned: dict[str, set[tuple[str, str]]] = field(default_factory=dict)

    def update(self, fleet: Fleet, devices: set[str], zones: set[int], now: float) -> list[Signal]:
        signals: list[Signal] = []
        for device_id in devices:
            device = fleet.devices.get(device_id)
            if device is not None:
                signals += self._diff(f"device:{device_id}", device_conditions(device), now)
        for zone_id in zones:
            zone = fleet.zones.get(zone_id)
            if zone is None:
                continue
            now_held = []
            if zone.status == "breach":
                now_held.append(Condition("zone_breach", f"zone:{zone.code}", zone.status_since or now,
                                          f"zone {zone.name}", "; ".join(zone.reasons), zone.id, None))
            signals += self._diff(f"zone:{zone_id}", now_held, now)
        signals.sort(key=lambda s: s.condition.rule != "zone_breach")  # a breach first: it inhibits the rest
        return signals

    def all_held(self) -> list[Condition]:
        return list(self.held.values())

    def _diff(self, owner: str, conditions: list[Condition], now: float) -> list[Signal]:
        before = self.owned.get(owner, set())
        current = {(c.rule, c.subject): c for c in conditions}
        out = [Signal(self.held.pop(k), False, now) for k in before - current.keys()]
        for key, condition in current.items():
            if key not in before:
                out.append(Signal(condition, True, condition.since))
            self.held[key] = condition
        self.owned[owner] = set(current)
        return out


def device_conditions(device: DeviceView) -> list[Condition]:
    label = device.name or device.id
    if device.online is False:
        return [Condition("device_offline", f"device:{device.id}", device.online_since or 0.0, label,
                          "not heard from: Last Will, shutdown or silence", device.zone_id, device.id)]
    out = []
    for printer in device.printers.values():
        seen = set()
        for code, (_, text, since) in printer.conditions.items():
            rule = PRINTER_RULES.get(code)
            if rule and rule not in seen:
                seen.add(rule)
                out.append(Condition(rule, f"printer:{device.id}/{printer.name}", since,
                                     f"printer {printer.name} on {label}", text, device.zone_id, device.id))
    for name, check in device.checks.items():
        if check.kind == "network" and check.status == "warning":
            out.append(Condition("network_slow", f"check:{device.id}/{name}", check.since, f"{name} from {label}",
                                 check.summary, device.zone_id, device.id))
    return out
