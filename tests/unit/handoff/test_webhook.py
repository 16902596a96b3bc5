"""Hand-off webhooks against a real partner server on loopback (a transport-level fake, not a mock).

The fake partner checks every request with `verify`, exactly as a partner would, and answers
with the statuses a test scripts for it.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ivr.handoff.webhook import Handoff, WebhookSender, WebhookTarget, sign, verify

SECRET = b"partner-12315-secret"
CST = timezone(timedelta(hours=8))


def handoff(call_id: str = "c1") -> Handoff:
    return Handoff(
        call_id=call_id,
        entry="12345",
        caller_masked="138****1234",
        menu_path="main/consumer",
        ticket_id="T20250101-0001",
        route_id="scjg-12315",
        unit="市市场监督管理局",
        line_name="12315消费者投诉举报",
        number="12315",
        time=datetime(2025, 1, 1, 9, 30, 0, tzinfo=CST),
    )


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    signature_ok: bool


@dataclass
class FakePartner:
    """A partner webhook: verifies signatures, records deliveries, answers as scripted."""

    statuses: list[int] = field(default_factory=list)  # answered in order; 200 once exhausted
    deliveries: list[Delivery] = field(default_factory=list)
    events: list[str] = field(default_factory=list)  # shared timeline with the test
    gate: asyncio.Event = field(default_factory=asyncio.Event)  # cleared: the partner is stuck

    def __post_init__(self) -> None:
        self.gate.set()
        self.app = web.Application()
        self.app.router.add_post("/hook", self.hook)

    async def hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        sig_ok = verify(
            SECRET,
            int(request.headers["X-Hotline-Timestamp"]),
            body,
            request.headers["X-Hotline-Signature"],
            now=time.time(),
        )
        self.deliveries.append(Delivery(dict(request.headers), body, sig_ok))
        self.events.append("partner received")
        await self.gate.wait()
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status, text="bad payload" if status == 400 else "")


@pytest.fixture
async def partner() -> AsyncIterator[tuple[FakePartner, str]]:
    fake = FakePartner()
    server = TestServer(fake.app, host="127.0.0.1")
    await server.start_server()
    yield fake, f"http://127.0.0.1:{server.port}/hook"
    fake.gate.set()  # release handlers still waiting so the server shuts down at once
    await server.close()


Outcome = tuple[str, str, str, int]  # target name, call_id, result, attempts


@pytest.fixture
async def make_sender() -> AsyncIterator[Callable[..., tuple[WebhookSender, list[Outcome]]]]:
    """Senders with millisecond backoff, recording every on_result; all closed at the end."""
    made: list[WebhookSender] = []

    def make(**kwargs: Any) -> tuple[WebhookSender, list[Outcome]]:
        outcomes: list[Outcome] = []

        def on_result(target: str, h: Handoff, result: str, attempts: int) -> None:
            outcomes.append((target, h.call_id, result, attempts))

        sender = WebhookSender(**{"backoff_base": 0.001, "on_result": on_result, **kwargs})
        made.append(sender)
        return sender, outcomes

    yield make
    for sender in made:
        await sender.close(timeout=1)


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.005)


def target(url: str, timeout_s: float = 5.0) -> WebhookTarget:
    return WebhookTarget(name="12315", url=url, secret=SECRET, timeout_s=timeout_s)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# -- the payload ---------------------------------------------------------------------------------


def test_the_body_has_every_field_in_a_stable_order_with_chinese_as_utf8() -> None:
    body = handoff().to_json()
    data = json.loads(body.decode("utf-8"))
    assert list(data) == [
        "call_id",
        "entry",
        "caller_masked",
        "menu_path",
        "ticket_id",
        "route_id",
        "unit",
        "line_name",
        "number",
        "time",
        "event",
    ]
    assert data["event"] == "handoff"
    assert data["time"] == "2025-01-01T09:30:00+08:00"
    assert "市市场监督管理局".encode() in body  # not \u escapes
    assert handoff().to_json() == body  # same hand-off, same bytes (what is signed)


def test_a_handoff_time_without_a_timezone_is_refused() -> None:
    with pytest.raises(ValueError):
        Handoff(
            call_id="c1",
            entry="12345",
            caller_masked="138****1234",
            menu_path="main",
            ticket_id="T1",
            route_id="r",
            unit="u",
            line_name="l",
            number="12315",
            time=datetime(2025, 1, 1, 9, 30),
        )


def test_the_partner_secret_never_appears_in_a_targets_repr() -> None:
    assert "partner-12315-secret" not in repr(target("https://partner.example/hook"))


# -- signatures ----------------------------------------------------------------------------------


def test_verify_accepts_our_signature_and_rejects_tampering_wrong_secrets_and_stale_timestamps() -> None:
    now = 1_700_000_000
    body = handoff().to_json()
    sig = sign(SECRET, now, body)
    assert sig.startswith("sha256=") and len(sig) == len("sha256=") + 64
    assert verify(SECRET, now, body, sig, now=now + 10)
    assert not verify(SECRET, now, body.replace(b"12315", b"12316"), sig, now=now), "tampered body"
    assert not verify(b"someone-else", now, body, sig, now=now), "wrong secret"
    assert not verify(SECRET, now, body, sign(b"someone-else", now, body), now=now), "signed with another secret"
    assert not verify(SECRET, now + 1, body, sig, now=now), "timestamp is inside the MAC"
    assert not verify(SECRET, now, body, sig, now=now + 301), "stale: replayed too late"
    assert not verify(SECRET, now, body, sig, now=now - 301), "from the future"
    assert verify(SECRET, now, body, sig, now=now + 600, tolerance_s=900)
    assert not verify(SECRET, now, body, sig.removeprefix("sha256="), now=now), "prefix is part of the value"
    assert not verify(SECRET, now, body, "sha256=令牌", now=now), "non-ASCII garbage is just wrong"


# -- delivery ------------------------------------------------------------------------------------


async def test_a_handoff_is_delivered_once_signed_with_the_partners_secret(
    partner: tuple[FakePartner, str], make_sender: Callable[..., tuple[WebhookSender, list[Outcome]]]
) -> None:
    fake, url = partner
    sender, outcomes = make_sender()
    sender.start()
    sender.submit(target(url), handoff())
    await until(lambda: bool(outcomes))
    assert outcomes == [("12315", "c1", "delivered", 1)]
    (d,) = fake.deliveries
    assert d.signature_ok
    assert d.headers["Content-Type"] == "application/json; charset=utf-8"
    assert d.headers["X-Hotline-Signature"] == sign(SECRET, int(d.headers["X-Hotline-Timestamp"]), d.body)
    assert abs(int(d.headers["X-Hotline-Timestamp"]) - time.time()) < 60
    assert len(d.headers["X-Hotline-Delivery"]) >= 16
    assert d.body == handoff().to_json()
    assert (sender.delivered, sender.rejected, sender.gave_up, sender.dropped) == (1, 0, 0, 0)


async def test_server_errors_are_retried_with_the_same_delivery_id_until_delivered(
    partner: tuple[FakePartner, str], make_sender: Callable[..., tuple[WebhookSender, list[Outcome]]]
) -> None:
    fake, url = partner
    fake.statuses = [500, 500, 200]
    sender, outcomes = make_sender()
    sender.start()
    sender.submit(target(url), handoff())
    await until(lambda: bool(outcomes))
    assert outcomes == [("12315", "c1", "delivered", 3)]
    assert len(fake.deliveries) == 3
    assert all(d.signature_ok for d in fake.deliveries)
    assert len({d.headers["X-Hotline-Delivery"] for d in fake.deliveries}) == 1, "partner can deduplicate"


async def test_too_many_requests_is_retried(
    partner: tuple[FakePartner, str], make_sender: Callable[..., tuple[WebhookSender, list[Outcome]]]
) -> None:
    fake, url = partner
    fake.statuses = [429, 200]
    sender, outcomes = make_sender()
    sender.start()
    sender.submit(target(url), handoff())
    await until(lambda: bool(outcomes))
    assert outcomes == [("12315", "c1", "delivered", 2)]


async def test_a_client_error_is_rejected_without_retrying(
    partner: tuple[FakePartner, str], make_sender: Callable[..., tuple[WebhookSender, list[Outcome]]]
) -> None:
    fake, url = partner
    fake.statuses = [400, 200]
    sender, outcomes = make_sender()
    sender.start()
    sender.submit(target(url), handoff())
    await until(lambda: bool(outcomes))
    await asyncio.sleep(0.05)  # room for a retry that must not happen
    assert outcomes == [("12315", "c1", "rejected", 1)]
    assert len(fake.deliveries) == 1
    assert sender.rejected == 1


async def test_an_unreachable_partner_is_given_up_after_max_attempts(
    make_sender: Callable[..., tuple[WebhookSender, list[Outcome]]],
) -> None:
    sender, outcomes = make_sender(max_attempts=3)
    sender.start()
    sender.submit(target(f"http://127.0.0.1:{closed_port()}/hook"), handoff())
    await until(lambda: bool(outcomes))
    assert outcomes == [("12315", "c1", "gave_up", 3)]
    assert sender.gave_up == 1


async def test_a_partner_slower_than_the_timeout_counts_as_a_failed_attempt(
    partner: tuple[FakePartner, str], make_sender: Callable[..., tuple[WebhookSender, list[Outcome]]]
) -> None:
    fake, url = partner
    fake.gate.clear()
    sender, outcomes = make_sender(max_attempts=2)
    sender.start()
    sender.submit(target(url, timeout_s=0.1), handoff())
    await until(lambda: bool(outcomes))
    assert outcomes == [("12315", "c1", "gave_up", 2)]
    assert len(fake.deliveries) == 2


async def test_submit_returns_before_a_slow_partner_answers(
    partner: tuple[FakePartner, str], make_sender: Callable[..., tuple[WebhookSender, list[Outcome]]]
) -> None:
    fake, url = partner
    fake.gate.clear()  # the partner takes the request and sits on it
    sender, outcomes = make_sender(workers=1)
    sender.start()
    for n in range(3):
        sender.submit(target(url), handoff(f"c{n}"))
        fake.events.append(f"submitted c{n}")
    await until(lambda: fake.events.count("partner received") == 1)
    assert fake.events[:3] == ["submitted c0", "submitted c1", "submitted c2"]
    assert outcomes == [] and sender.pending == 3
    fake.gate.set()
    await until(lambda: len(outcomes) == 3)
    assert [o[2] for o in outcomes] == ["delivered"] * 3


async def test_a_full_queue_drops_loudly_and_reports_it(
    make_sender: Callable[..., tuple[WebhookSender, list[Outcome]]],
) -> None:
    sender, outcomes = make_sender(queue_size=1)  # not started: nothing drains the queue
    sender.submit(target("http://127.0.0.1:9/hook"), handoff("c1"))
    sender.submit(target("http://127.0.0.1:9/hook"), handoff("c2"))
    assert outcomes == [("12315", "c2", "dropped", 0)]
    assert sender.dropped == 1


async def test_a_failing_result_callback_does_not_stop_later_deliveries(
    partner: tuple[FakePartner, str], make_sender: Callable[..., tuple[WebhookSender, list[Outcome]]]
) -> None:
    _, url = partner
    seen: list[str] = []

    def broken(target: str, h: Handoff, result: str, attempts: int) -> None:
        seen.append(h.call_id)
        raise RuntimeError("metrics backend down")

    sender, _ = make_sender(workers=1, on_result=broken)
    sender.start()
    sender.submit(target(url), handoff("c1"))
    sender.submit(target(url), handoff("c2"))
    await until(lambda: len(seen) == 2)
    assert sender.delivered == 2


# -- shutdown ------------------------------------------------------------------------------------


async def test_close_flushes_pending_deliveries(
    partner: tuple[FakePartner, str], make_sender: Callable[..., tuple[WebhookSender, list[Outcome]]]
) -> None:
    fake, url = partner
    sender, outcomes = make_sender(workers=2)
    sender.start()
    for n in range(5):
        sender.submit(target(url), handoff(f"c{n}"))
    assert await sender.close(timeout=5) == 0
    assert sorted(o[1] for o in outcomes if o[2] == "delivered") == [f"c{n}" for n in range(5)]
    assert len(fake.deliveries) == 5


async def test_close_reports_what_it_could_not_deliver_in_time_as_dropped(
    partner: tuple[FakePartner, str], make_sender: Callable[..., tuple[WebhookSender, list[Outcome]]]
) -> None:
    fake, url = partner
    fake.gate.clear()
    sender, outcomes = make_sender(workers=1)
    sender.start()
    sender.submit(target(url), handoff("c1"))  # in flight, stuck at the partner
    sender.submit(target(url), handoff("c2"))  # still queued
    await until(lambda: len(fake.deliveries) == 1)
    assert await sender.close(timeout=0.1) == 2
    assert sorted(outcomes) == [("12315", "c1", "dropped", 1), ("12315", "c2", "dropped", 0)]
    assert sender.dropped == 2


async def test_a_handoff_submitted_after_close_is_reported_dropped_not_lost(
    make_sender: Callable[..., tuple[WebhookSender, list[Outcome]]],
) -> None:
    sender, outcomes = make_sender()
    sender.start()
    await sender.close(timeout=1)
    sender.submit(target("http://127.0.0.1:9/hook"), handoff())
    assert outcomes == [("12315", "c1", "dropped", 0)]
