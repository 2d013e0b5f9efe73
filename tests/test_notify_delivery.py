"""The dispatcher against real local receivers: concurrent, retried, reported, never raising, closable.

No timing thresholds: ordering of arrivals and outcomes is asserted, retry waits are tiny.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from server.notify import Receiver, build_receiver
from server.notify.base import Notice, Notifier
from server.notify.delivery import DeliveryOptions, Dispatcher, Outcome
from tests.peers.smtp import SmtpServer
from tests.peers.webhook import WebhookReceiver
from tests.test_notify_render import make_notice

OK_NOTE = 'HTTP 200: {"errcode": 0, "errmsg": "ok"}'
FAST_RETRIES = DeliveryOptions(attempts=4, first_delay=0.01, max_delay=0.02, attempt_timeout=30)


class Log:
    """Collects on_result calls, in order; lets a test wait for one."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, bool, str]] = []
        self.changed = asyncio.Event()

    def __call__(self, name: str, notice: Notice, attempt: int, ok: bool, detail: str) -> None:
        self.calls.append((name, attempt, ok, detail))
        self.changed.set()

    async def until(self, predicate: Callable[[], bool], timeout: float = 15.0) -> None:
        async def wait() -> None:
            while not predicate():
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(wait(), timeout)

    def of(self, name: str) -> list[tuple[int, bool, str]]:
        return [(attempt, ok, detail) for n, attempt, ok, detail in self.calls if n == name]


def hook(receiver: WebhookReceiver, name: str, **options) -> Receiver:
    return build_receiver(name, "webhook", {"url": receiver.url_for(f"/{name}"), **options})


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


def test_a_receiver_answering_500_is_retried_and_then_succeeds(webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.respond(status=500, body=b"database is locked", times=2, path="/flaky")

    async def go() -> None:
        log = Log()
        async with Dispatcher(FAST_RETRIES, log) as dispatcher:
            [outcome] = await dispatcher.deliver(make_notice(), [hook(webhook_receiver, "flaky")])
        assert outcome == Outcome("flaky", True, 3, OK_NOTE)
        (a1, ok1, d1), (a2, ok2, d2), (a3, ok3, _) = log.of("flaky")
        assert d2.startswith("HTTP 500: database is locked; next attempt in ")
        assert (a1, ok1, a2, ok2, a3, ok3) == (1, False, 2, False, 3, True)
        assert d1.startswith("HTTP 500: database is locked; next attempt in ")
        assert len(webhook_receiver.requests_to("/flaky")) == 3

    run(go)


def test_a_hanging_receiver_does_not_delay_another(webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.hang(path="/slow")

    async def go() -> None:
        log = Log()
        async with Dispatcher(FAST_RETRIES, log) as dispatcher:
            tasks = dispatcher.dispatch(make_notice(), [hook(webhook_receiver, "slow"), hook(webhook_receiver, "fast")])
            assert len(tasks) == 2 and dispatcher.pending == 2
            await log.until(lambda: bool(log.of("fast")))
            await webhook_receiver.wait_requests(1, path="/slow")
            assert log.of("fast") == [(1, True, OK_NOTE)]
            assert log.of("slow") == [], "the slow receiver's request is still unanswered"
            webhook_receiver.release()
            await dispatcher.drain()
            assert [name for name, *_ in log.calls] == ["fast", "slow"]
            assert log.of("slow")[0][:2] == (1, True)

    run(go)


def test_a_hanging_receiver_times_out_and_is_retried(webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.hang(path="/stuck")

    async def go() -> None:
        log = Log()
        async with Dispatcher(FAST_RETRIES, log) as dispatcher:
            receiver = hook(webhook_receiver, "stuck", timeout=0.2)
            [outcome] = await dispatcher.deliver(make_notice(), [receiver])
            assert outcome.ok and outcome.attempts == 2
            assert log.of("stuck")[0][2].startswith("no answer within 0.2 s; next attempt in")

    run(go)


def test_errcode_failure_is_not_retried_and_attempts_run_out(webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.respond(json={"errcode": 310000, "errmsg": "keywords not in content"}, path="/robot")
    webhook_receiver.respond(status=503, body=b"maintenance", times=10, path="/down")

    async def go() -> None:
        log = Log()
        thrice = DeliveryOptions(attempts=3, first_delay=0.01, max_delay=0.01)
        async with Dispatcher(thrice, log) as dispatcher:
            robot = build_receiver("robot", "dingtalk", {"url": webhook_receiver.url_for("/robot")})
            outcomes = await dispatcher.deliver(make_notice(), [robot, hook(webhook_receiver, "down")])
            by_name = {o.receiver: o for o in outcomes}
            assert by_name["robot"] == Outcome("robot", False, 1, "errcode 310000: keywords not in content; "
                                                                  "not retried: trying again cannot help")
            assert (by_name["down"].ok, by_name["down"].attempts) == (False, 3)
            assert by_name["down"].detail == "HTTP 503: maintenance; giving up after 3 attempts"
            assert [a for a, _, _ in log.of("down")] == [1, 2, 3]

    run(go)


def test_email_and_webhook_together_with_a_temporary_smtp_refusal(webhook_receiver: WebhookReceiver,
                                                                  smtp_server: SmtpServer) -> None:
    smtp_server.reject("451 4.3.0 Try again later")

    async def go() -> None:
        log = Log()
        async with Dispatcher(FAST_RETRIES, log) as dispatcher:
            mail = build_receiver("oncall-mail", "email", {
                "host": "127.0.0.1", "port": smtp_server.port, "security": "none",
                "sender": "zw@example.gov.cn", "to": ["it@example.gov.cn"]})
            outcomes = await dispatcher.deliver(make_notice(), [mail, hook(webhook_receiver, "ops")])
            assert all(o.ok for o in outcomes)
            (a1, ok1, d1), (a2, ok2, d2) = log.of("oncall-mail")
            assert (a1, ok1, a2, ok2) == (1, False, 2, True)
            assert "answered 451 4.3.0 Try again later; next attempt in" in d1
            assert d2.startswith("accepted by 127.0.0.1:")
            assert len(smtp_server.messages) == 1 and len(webhook_receiver.requests) == 1

    run(go)


def test_close_cancels_pending_retries(webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.respond(status=500, times=100)

    async def go() -> None:
        log = Log()
        hour = DeliveryOptions(attempts=5, first_delay=3600, max_delay=3600, jitter=0)
        async with Dispatcher(hour, log) as dispatcher:
            dispatcher.dispatch(make_notice(), [hook(webhook_receiver, "a"), hook(webhook_receiver, "b")])
            await log.until(lambda: len(log.calls) == 2)
            assert dispatcher.pending == 2, "both are waiting an hour for their second attempt"
        # leaving the block closed the dispatcher: the retries are cancelled, not waited for
        assert dispatcher.pending == 0
        assert all("next attempt in 3600.0 s" in detail for *_, detail in log.calls)
        assert dispatcher.dispatch(make_notice(), [hook(webhook_receiver, "a")]) == []

    run(go)


class Broken(Notifier):
    name = "broken"

    async def send(self, notice, http) -> str:
        raise RuntimeError("bug in a notifier")


def test_nothing_raises_into_the_caller(webhook_receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture) -> None:
    async def go() -> None:
        calls: list[int] = []

        async def failing_callback(name, notice, attempt, ok, detail) -> None:
            calls.append(attempt)
            raise ValueError("the timeline is full")

        twice = DeliveryOptions(attempts=2, first_delay=0, max_delay=0)
        async with Dispatcher(twice, failing_callback) as dispatcher:
            broken = Receiver("broken", Broken(Broken.Options()))
            outcomes = await dispatcher.deliver(make_notice(), [broken, hook(webhook_receiver, "ok")])
            assert {o.receiver: o.ok for o in outcomes} == {"broken": False, "ok": True}
            assert next(o for o in outcomes if o.receiver == "broken").detail.startswith(
                "RuntimeError: bug in a notifier")
            assert sorted(calls) == [1, 1, 2]

    run(go)
    assert "on_result callback failed" in caplog.text and "failed unexpectedly" in caplog.text


def test_send_resolved_false_leaves_a_receiver_out_of_resolved_notices(webhook_receiver: WebhookReceiver) -> None:
    async def go() -> None:
        async with Dispatcher(FAST_RETRIES) as dispatcher:
            quiet = hook(webhook_receiver, "quiet", send_resolved=False)
            loud = hook(webhook_receiver, "loud")
            outcomes = await dispatcher.deliver(make_notice(kind="resolved"), [quiet, loud])
            assert [o.receiver for o in outcomes] == ["loud"]
            assert [o.receiver for o in await dispatcher.deliver(make_notice(), [quiet])] == ["quiet"]

    run(go)
