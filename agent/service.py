"""The agent service: collectors → latest checks → report (every interval and at once on any
status change) → spool → MQTT link, until told to stop.

Collectors can be injected (the demo's simulated devices use this service with simulated
collectors and the real spool, link and command handling).
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import msgspec.inspect

from protocol import Ack, Command, Desired, ProtocolError, Report, Topics, decode, encode, worst

from . import __version__
from .collectors import AgentContext, Collector, collector_class
from .collectors.runner import CollectorRunner
from .commands import CommandHandler
from .config import AgentConfig
from .content.apply import Applier
from .content.handler import ContentHandler, content_root
from .link import MqttLink
from .spool import Spool, SpoolLimits

log = logging.getLogger("zonewatch.agent")
SEND_WINDOW = 50  # reports in flight at once


def build_collectors(config: AgentConfig, context: AgentContext) -> list[Collector]:
    return [collector_class(name)(options, context)
            for name, options in config.collector_options.items() if options.enabled]


class AgentService:
    def __init__(self, config: AgentConfig, collectors: list[Collector] | None = None) -> None:
        self.config = config
        data = Path(config.agent.data_dir)
        self.context = AgentContext(device_id=config.agent.device_id, data_dir=data)
        self.collectors = collectors if collectors is not None else build_collectors(config, self.context)
        s = config.spool
        self.spool = Spool(data / "spool.db", SpoolLimits(s.max_reports, s.max_bytes, s.max_age))
        self.runner = CollectorRunner()
        self.topics = Topics(config.mqtt.topic_prefix)
        self.latest: dict[str, list] = {}
        self._reported: dict[str, str] | None = None  # check name -> status in the last report
        self._sent_upto = 0
        self._kick = asyncio.Event()
        self._change_pending = False
        self.link: MqttLink | None = None
        self.reports_written = 0
        applier = Applier(config.content, content_root(config.content.dir, data), config.mqtt.username or
                          config.agent.device_id, self._mqtt_password, self._kiosk_problem)
        self.content = ContentHandler(applier, config.agent.device_id, self._send_ack, self._content_changed)
        self.commands = CommandHandler(config, self._send_ack, diagnose=self._diagnose)

    # -- running --------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        self.link = MqttLink(self.config, loop, on_up=self._link_up, on_down=lambda reason: None,
                             on_acked=self._acked, on_message=self._message)
        self.link.start()
        tasks = [asyncio.create_task(self._sender(), name="sender")]
        self.content.start()
        try:
            await asyncio.gather(*(self._first_run(c) for c in self.collectors))
            self._write_report("startup")
            tasks += [asyncio.create_task(self._collector_loop(c), name=c.name) for c in self.collectors]
            tasks.append(asyncio.create_task(self._interval_loop(), name="interval"))
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.content.stop()
            await self.commands.stop()
            await loop.run_in_executor(None, self.link.stop)
            for collector in self.collectors:
                collector.close()
            self.runner.close()
            self.spool.close()

    async def _first_run(self, collector: Collector) -> None:
        self.latest[collector.name] = await self.runner.run(collector)

    async def _collector_loop(self, collector: Collector) -> None:
        while True:
            await asyncio.sleep(collector.options.every)
            self.latest[collector.name] = await self.runner.run(collector)
            if self._statuses() != self._reported and not self._change_pending:
                self._change_pending = True
                asyncio.get_running_loop().call_soon(self._write_report, "change")

    async def _interval_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.agent.interval)
            self._write_report("interval")

    # -- reports --------------------------------------------------------------------------
    def _statuses(self) -> dict[str, str]:
        return {c.name: c.status for checks in self.latest.values() for c in checks}

    def current_checks(self) -> list:
        return [c for name in sorted(self.latest) for c in self.latest[name]]

    def _write_report(self, trigger: str) -> int:
        self._change_pending = False
        checks = self.current_checks()
        a = self.config.agent

        def build(seq: int, dropped: int, backlog: int) -> bytes:
            report = Report(device_id=a.device_id, ts=time.time(), seq=seq, interval_s=a.interval, checks=checks,
                            trigger=trigger, agent_version=__version__, spool_dropped=dropped, spool_backlog=backlog)
            try:
                return encode(report)
            except ProtocolError as exc:
                log.error("a check broke the protocol (%s); reporting it as unknown", exc)
                report.checks = [v for c in checks if (v := _valid_or_unknown(c, a.device_id)) is not None]
                return encode(report)

        seq = self.spool.append(build)
        self._reported = {c.name: c.status for c in checks}
        self.reports_written += 1
        log.debug("report seq %d (%s): %s", seq, trigger, worst(c.status for c in checks))
        self._kick.set()
        return seq

    # -- delivery -------------------------------------------------------------------------
    async def _sender(self) -> None:
        while True:
            await self._kick.wait()
            self._kick.clear()
            link = self.link
            while link is not None and link.connected and link.inflight < SEND_WINDOW:
                rows = self.spool.pending(after=self._sent_upto, limit=SEND_WINDOW - link.inflight)
                if not rows:
                    break
                for seq, payload in rows:
                    if not link.publish_report(seq, payload):
                        break
                    self._sent_upto = seq

    def _link_up(self) -> None:
        self._sent_upto = 0  # republish everything still spooled, oldest first
        self._kick.set()

    def _acked(self, seq: int) -> None:
        self.spool.remove(seq)
        self._kick.set()

    # -- server → device ------------------------------------------------------------------
    def _message(self, topic: str, payload: bytes, retained: bool) -> None:
        try:
            decoded = decode(topic, payload, prefix=self.config.mqtt.topic_prefix)
        except ProtocolError as exc:
            log.warning("ignored a message from the server: %s", exc)
            return
        message = decoded.message
        if isinstance(message, Command) and not retained:
            self.context.clock_offset = time.time() - message.ts
        if isinstance(message, Desired):
            self.content.desired(message)
            return
        if isinstance(message, Command):
            if retained:
                log.warning("ignored retained command %s: commands are one-shot", message.id)
                return
            self.commands.handle(message)
            return
        log.info("received %s (generation/command handling arrives with the rollout work)", decoded.topic.kind)


    # -- content (agent/content/) --------------------------------------------------------------------------
    def _send_ack(self, ack: Ack) -> None:
        if self.link is not None:
            self.link.publish_ack(encode(ack))

    def _content_changed(self) -> None:
        """Loop thread, after a bundle went live or was refused: report the content check at once."""
        collector = next((c for c in self.collectors if c.name == "content"), None)

        async def rerun() -> None:
            if collector is not None:
                self.latest[collector.name] = await self.runner.run(collector)
            self._write_report("content")

        asyncio.get_running_loop().create_task(rerun())

    def _diagnose(self) -> tuple[str, dict]:
        """Loop thread, for the ``diagnostics`` command: a report now, with every check's latest result."""
        seq = self._write_report("diagnostics")
        checks = self.current_checks()
        status = worst(c.status for c in checks)
        problems = [f"{c.name}: {c.status}: {c.summary}"[:300] for c in checks if c.status != "ok"][:20]
        return (f"report {seq} sent: {status}, {len(checks)} checks, {len(problems)} not ok",
                {"report_seq": seq, "status": status, "checks": len(checks), "problems": problems})

    def _mqtt_password(self) -> str:
        m = self.config.mqtt
        if m.password_file:
            return Path(m.password_file).read_text().strip()
        return m.password or ""

    def _kiosk_problem(self) -> str | None:
        """Worker thread: None when the kiosk collector (if configured) says the front end runs, else why not."""
        kiosk = next((c for c in self.collectors if c.name == "kiosk"), None)
        if kiosk is None:
            return None
        bad = [c for c in kiosk.collect() if c.status == "critical"]
        return bad[0].summary if bad else None


def _valid_or_unknown(check, device_id: str):
    """``check`` if it encodes; else the same kind of check, ``unknown``, saying why; None if even that fails."""
    if _encodes(check, device_id):
        return check
    error = f"check {check.name!r} had values outside the protocol's bounds (a collector bug)"
    required = {f.name: getattr(check, f.name) for f in msgspec.inspect.type_info(type(check)).fields if f.required}
    stub = type(check)(**{**required, "status": "unknown", "summary": error[:1024], "error": error[:1024]})
    return stub if _encodes(stub, device_id) else None


def _encodes(check, device_id: str) -> bool:
    try:
        encode(Report(device_id=device_id, ts=time.time(), seq=0, interval_s=1, checks=[check]))
    except ProtocolError:
        return False
    return True
