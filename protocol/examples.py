"""One realistic example of each message, used by docs/protocol.md and the tests."""

from __future__ import annotations

from .checks import (
    ClockCheck,
    ContentCheck,
    Disk,
    KioskCheck,
    NetworkCheck,
    PrinterCheck,
    PrinterCondition,
    Supply,
    SystemCheck,
)
from .messages import Ack, Command, Desired, DesiredContent, Message, Presence, Report

DEVICE = "hall-03-kiosk-1"
TS = 1795424520.25  # 2026-11-23 10:22:00.25 +08:00
SHA = "3f2b9c0d6e1a4b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e"


def examples() -> dict[str, Message]:
    """Message kind (last topic level) → an example message for ``DEVICE``."""
    return {
        "presence": Presence(device_id=DEVICE, ts=TS, online=True, agent_version="0.1.0",
                             interval_s=30),
        "report": Report(
            device_id=DEVICE, ts=TS, seq=48211, interval_s=30, trigger="change",
            agent_version="0.1.0", config_version="7",
            checks=[
                NetworkCheck(name="network:portal", status="ok", summary="portal answered 200 in 38 ms",
                             probe="http", target="https://portal.example.gov.cn/", up=True,
                             latency_ms=38.2, http_status=200, duration_ms=39.0),
                NetworkCheck(name="network:gateway", status="ok", summary="gateway answers, 0% loss",
                             probe="icmp", target="192.0.2.1", up=True, latency_ms=0.9,
                             loss_pct=0, gateway=True, duration_ms=3.1),
                PrinterCheck(
                    name="printer:Hall-3-HP", status="critical",
                    summary="Hall-3-HP is out of paper (stopped, 2 jobs waiting)",
                    printer="Hall-3-HP", state="stopped", accepting=True,
                    reasons=["media-empty-error", "paused"],
                    conditions=[
                        PrinterCondition(code="media-empty", severity="critical",
                                         text="out of paper", reason="media-empty-error"),
                        PrinterCondition(code="paused", severity="critical",
                                         text="queue stopped", reason="paused"),
                    ],
                    supplies=[
                        Supply(name="Black Toner", type="toner", color="#000000", raw_level=42,
                               level=42, state="ok"),
                        Supply(name="Waste Toner", type="waste-toner", raw_level=-3,
                               state="remaining"),
                    ],
                    jobs_queued=2, oldest_job_age_s=95.0, make_model="HP LaserJet M404",
                    uri="ipp://127.0.0.1:631/ipp/print", duration_ms=12.5,
                ),
                SystemCheck(name="system", status="ok", summary="up 3 d, cpu 4%, memory 41%",
                            uptime_s=259200, boot_time=TS - 259200, cpu_pct=4.0, memory_pct=41.0,
                            disks=[Disk(path="/var/lib/zonewatch", used_pct=22.5,
                                        free_bytes=48_000_000_000)]),
                KioskCheck(name="kiosk", status="ok", summary="chromium running for 3 d",
                           process="chromium", running=True, pid=1234, running_for_s=259000),
                ContentCheck(name="content", status="ok", summary="content 2026.11.20 installed",
                             version="2026.11.20", sha256=SHA, applied_at=TS - 86400),
                ClockCheck(name="clock", status="ok", summary="clock 0.4 s ahead of the server",
                           offset_s=0.4),
            ],
        ),
        "ack": Ack(device_id=DEVICE, ts=TS, ref="cmd-5f1c", target="command", state="done",
                   detail="test page sent to Hall-3-HP as job 118", result={"job_id": 118}),
        "desired": Desired(
            device_id=DEVICE, ts=TS, generation=12,
            content=DesiredContent(version="2026.11.23",
                                   url="https://zonewatch.example.gov.cn/api/v1/bundles/" + SHA,
                                   sha256=SHA, size=18_204_311, signature="base64-ed25519-signature"),
        ),
        "run": Command(device_id=DEVICE, ts=TS, id="cmd-5f1c", action="test_print",
                       expires=TS + 600, args={"printer": "Hall-3-HP"},
                       signature="base64-ed25519-signature"),
    }
