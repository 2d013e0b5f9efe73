"""The incidents API of a real server, over plain HTTP: the client and the server the API tests share.

:func:`running_api` starts the real server (tests/server_process.py) on a fresh SQLite database with
three zones, hall-1 … hall-3 (one kiosk each), alerting routed to a local webhook receiver plus
receivers that carry secrets (a signed webhook, a DingTalk robot) that the API must never show.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from server.db import make_engine, upgrade
from tests.peers.webhook import WebhookReceiver
from tests.server_process import Fleetpub, ServerProcess
from tests.test_incidents import alerts_config, make_zone, two_printers

SECRETS = ("topsecret", "dingtoken123", "SECdingsign456")


def parse(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


class Api:
    """The server over plain HTTP: (status, parsed JSON) for any method, a JSON body when given."""

    def __init__(self, server: ServerProcess, engine, hook: WebhookReceiver, pub: Fleetpub) -> None:
        self.server, self.engine, self.hook, self.pub = server, engine, hook, pub
        self.url = server.url
        self.seq: dict[str, int] = {}

    def call(self, method: str, path: str, body=None, *, raw: bytes | None = None,
             content_type: str = "application/json", headers: dict[str, str] | None = None) -> tuple[int, dict]:
        """As the test admin (a bearer token) unless ``headers`` say otherwise."""
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers=self.server.headers if headers is None else headers)
        if data is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")

    def get(self, path: str, **params) -> dict:
        query = "?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else ""
        status, body = self.call("GET", path + query)
        assert status == 200, (path, status, body)
        return body

    def send(self, device: str, first: str = "ok", condition: str | None = None) -> None:
        """A report from ``device`` whose printer P1 is as given (P2 stays fine, so the zone is not in breach)."""
        self.seq[device] = self.seq.get(device, 0) + 1
        self.pub.send(two_printers(device, self.seq[device], first, condition))

    def hooks_for(self, zone: str) -> list[dict]:
        return [r.json for r in self.hook.requests_to("/hook") if r.json and r.json.get("zone_code") == zone]


@contextmanager
def running_api(tmp: Path, mqtt_port: int) -> Iterator[Api]:
    engine = make_engine(f"sqlite:///{tmp / 'fleet.db'}")
    upgrade(engine)
    for n in (1, 2, 3):
        make_zone(engine, f"hall-{n}", kiosks=(f"kiosk-{n}",))
    hook = WebhookReceiver().start()
    robot = "https://oapi.dingtalk.com/robot/send?access_token=dingtoken123"
    config = alerts_config(hook) + "\n".join([
        "[receivers.signed]", 'kind = "webhook"', f'url = "{hook.url_for("/signed")}"', 'secret = "topsecret"',
        "[receivers.robot]", 'kind = "dingtalk"', f'url = "{robot}"', 'secret = "SECdingsign456"',
        "[alerts.rules.printer_media_low]", "hold = 5", 'severity = "critical"',
        "[alerts.rules.network_slow]", "enabled = false"]) + "\n"
    server = ServerProcess(tmp / "server", mqtt_port, str(engine.url), sweep_every=0.2, extra=config)
    pub = None
    try:
        server.start()
        pub = Fleetpub(mqtt_port)
        yield Api(server, engine, hook, pub)
    finally:
        if pub is not None:
            pub.close()
        server.stop()
        hook.stop()
        engine.dispose()
