"""zonewatch agent: runs on a kiosk or counter PC, collects checks, reports over MQTT.

Needs only the ``agent`` extra (paho-mqtt, psutil, pycups) — never the server's dependencies.
"""

__version__ = "0.1.0"
