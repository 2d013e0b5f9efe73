"""The collector registry: adding a check is one module plus one line here.

Collectors are imported only when enabled, so a device without printers never loads pycups.
"""

from __future__ import annotations

import importlib

from .base import AgentContext, Collector, CollectorOptions

#: name -> "module:Class". The name is the ``[collectors.<name>]`` config section.
REGISTRY: dict[str, str] = {
    "network": "agent.collectors.network:NetworkCollector",
    "printer": "agent.collectors.printer:PrinterCollector",
    "system": "agent.collectors.system:SystemCollector",
    "kiosk": "agent.collectors.kiosk:KioskCollector",
    "content": "agent.collectors.content:ContentCollector",
    "clock": "agent.collectors.clock:ClockCollector",
}


def collector_class(name: str) -> type[Collector]:
    module, _, cls = REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), cls)


__all__ = ["REGISTRY", "AgentContext", "Collector", "CollectorOptions", "collector_class"]
