"""zonewatch server: ingest, storage, health of every zone, alerts, web UI and API.

Needs the ``server`` extra. Importing it without that extra fails with an error that says
which package is missing and the command that installs it.
"""

from importlib.util import find_spec as _find_spec

__version__ = "0.1.0"

_REQUIRED = {"aiohttp": "aiohttp", "sqlmodel": "sqlmodel", "apscheduler": "apscheduler",
             "alembic": "alembic"}
_missing = [dist for module, dist in _REQUIRED.items() if _find_spec(module) is None]
if _missing:
    raise ImportError(
        "the zonewatch server needs the 'server' extra, which is not installed here "
        f"(missing: {', '.join(_missing)}). Install it with: pip install 'zonewatch[server]'"
    )
del _find_spec, _REQUIRED, _missing
