"""Test-suite wiring: the real-peer fixtures live in tests/peers/, one plugin per peer."""

pytest_plugins = [
    "tests.peers.mosquitto",
    "tests.peers.cups",
    "tests.peers.ippeveprinter",
    "tests.peers.postgres",
    "tests.peers.dnsmasq",
    "tests.peers.http_target",
    "tests.peers.webhook",
    "tests.peers.smtp",
    "tests.peers.browser",
]
