"""The fleet's version, which the shared read cache keys on: it moves with every status change and only then."""

from __future__ import annotations

import time

from protocol import Codec
from server.db import upgrade
from server.ingest.writer import Incoming
from server.service import FleetService
from server.settings import parse_settings
from tests.server_process import report


def _ingest(service: FleetService, codec: Codec, message, mid: int) -> None:
    before = service.writer.stats.received
    service.writer.submit_many([Incoming(mid=mid, qos=1, topic=codec.topics.device(message.device_id, "report"),
                                         payload=codec.encode(message), received_at=time.time())])
    deadline = time.monotonic() + 30
    while service.writer.stats.received == before:
        assert time.monotonic() < deadline, "the writer did not take the report in"
        time.sleep(0.01)


def test_a_report_that_changes_nothing_leaves_the_version_and_a_status_change_moves_it(tmp_path):
    settings = parse_settings(f'[server]\ndata_dir = "{tmp_path}/data"\n[database]\nurl = "sqlite:///{tmp_path}/z.db"\n',
                              environ={})
    service = FleetService(settings, with_broker=False)
    upgrade(service.engine)
    service.open()
    codec = Codec()
    try:
        assert service.fleet_version == 0
        _ingest(service, codec, report("kiosk-1", 1), 1)
        first = service.fleet_version
        assert first > 0, "a new device with new checks is a change"
        _ingest(service, codec, report("kiosk-1", 2), 2)
        _ingest(service, codec, report("kiosk-1", 3), 3)
        assert service.fleet_version == first, "'still the same' reports must not empty the page cache"
        _ingest(service, codec, report("kiosk-1", 4, printer="critical", condition="media-empty"), 4)
        assert service.fleet_version > first
    finally:
        service.close()
