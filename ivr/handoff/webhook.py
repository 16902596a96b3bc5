"""Hand-off notifications to partner platforms (interconnect mode), delivered off the call path.

When the hotline hands a call to a partner platform (e.g. the 12315 market-regulation
platform) the partner also wants the call's context -- which menu the citizen went through,
the ticket, the route -- so its agent does not ask again. We POST it as JSON to the partner's
webhook, signed so the partner can tell it came from us and was not replayed:

    X-Hotline-Timestamp: <unix seconds>
    X-Hotline-Signature: sha256=<hex HMAC-SHA256 over f"{timestamp}.{body}" with the partner's secret>
    X-Hotline-Delivery:  <one id per hand-off, the same on every retry, so the partner can deduplicate>

Why a queue and worker tasks: a partner that is slow or down must never hold a citizen's call,
so `WebhookSender.submit` only enqueues. Delivery retries with backoff on what can get better
(connection errors, timeouts, 5xx, 429) and stops at once on what cannot (other 4xx: the
partner refused this payload or our credentials). Nothing is lost silently: every hand-off ends
in exactly one of delivered / rejected / gave_up / dropped, logged and passed to `on_result`
so the controller can put it in the call log and the metrics.

aiohttp's exceptions stop here; the rest of the controller only ever sees those four results.
Caller numbers arrive already masked (`caller_masked`) and are never logged by this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Literal, Protocol

import aiohttp
import structlog

log = structlog.get_logger("ivr.handoff.webhook")

Result = Literal["delivered", "rejected", "gave_up", "dropped"]


class Payload(Protocol):
    """What can be delivered: a hand-off, or a ticket's status change (ivr.ticketing.api.StatusChange)."""

    @property
    def call_id(self) -> str: ...

    @property
    def ticket_id(self) -> str: ...

    def to_json(self) -> bytes: ...


OnResult = Callable[[str, Payload, Result, int], None]

SIGNATURE_PREFIX = "sha256="
CONTENT_TYPE = "application/json; charset=utf-8"


@dataclass(frozen=True)
class Handoff:
    """One call handed to a partner platform: the JSON body, in this field order."""

    call_id: str
    entry: str  # the number the citizen dialled (12345 or the short number)
    caller_masked: str  # already masked with ivr.privacy.mask; the clear number never leaves
    menu_path: str  # as in the call log: "main/consumer"
    ticket_id: str
    route_id: str
    unit: str
    line_name: str
    number: str  # the published number of the partner line
    time: datetime  # must carry a timezone: partners are in other systems and other zones
    event: str = "handoff"

    def __post_init__(self) -> None:
        # A naive time would be read in the partner's zone, silently shifted; refuse it here,
        # where the bug is, not at the partner.
        if self.time.tzinfo is None or self.time.utcoffset() is None:
            raise ValueError("Handoff.time must be timezone-aware")

    def as_dict(self) -> dict[str, str]:
        data: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            data[f.name] = value.isoformat(timespec="seconds") if isinstance(value, datetime) else value
        return data

    def to_json(self) -> bytes:
        """The exact bytes signed and sent: keys in field order, Chinese text as UTF-8 (not \\u escapes)."""
        return json.dumps(self.as_dict(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class WebhookTarget:
    """A partner's webhook. The secret is kept out of repr so it never reaches a log line."""

    name: str  # used in logs and metrics instead of the URL (which may carry a token)
    url: str
    secret: bytes = field(repr=False)
    timeout_s: float = 5.0  # per attempt, connect to last byte


# -- signing (our side and the partner's side) -------------------------------------------------


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The X-Hotline-Signature value: "sha256=" + hex HMAC-SHA256 over b"{timestamp}." + body.

    The timestamp is inside the MAC so an old delivery cannot be replayed with a fresh header.
    """
    mac = hmac.new(secret, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def verify(secret: bytes, timestamp: int, body: bytes, signature: str, *, now: float, tolerance_s: float = 300) -> bool:
    """True if `signature` is ours for this timestamp and body, and the timestamp is fresh.

    Timestamps more than `tolerance_s` away from `now` (past or future) are refused, which
    bounds how long a captured request could be replayed. The comparison is constant-time so
    the signature cannot be guessed byte by byte from response timings.
    """
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body)
    return hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", "replace"))


# -- delivery ----------------------------------------------------------------------------------


@dataclass(eq=False)
class _Job:
    target: WebhookTarget
    handoff: Payload
    delivery_id: str
    attempts: int = 0


class WebhookSender:
    """Delivers hand-offs in the background; `submit` never waits for the network.

    Call `start()` from inside the running event loop, `submit()` from anywhere in it, and
    `await close()` on shutdown. One aiohttp session serves all partners; TLS certificates are
    verified (aiohttp's default, never turned off: the body carries personal data).
    """

    def __init__(
        self,
        *,
        max_attempts: int = 6,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        queue_size: int = 10000,
        workers: int = 4,
        on_result: OnResult | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_attempts < 1 or workers < 1 or queue_size < 1:
            raise ValueError("max_attempts, workers and queue_size must be at least 1")
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base  # tests pass a tiny base; production waits 0.5, 1, 2, 4 ... s
        self.backoff_cap = backoff_cap
        self.on_result = on_result
        self._clock = clock
        self._n_workers = workers
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(maxsize=queue_size)
        self._inflight: set[_Job] = set()
        self._workers: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self.delivered = 0
        self.rejected = 0
        self.gave_up = 0
        self.dropped = 0

    @property
    def pending(self) -> int:
        """Hand-offs queued or being delivered right now."""
        return self._queue.qsize() + len(self._inflight)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Open the HTTP session and start the workers; needs a running event loop."""
        if self._closed:
            raise RuntimeError("WebhookSender is closed")
        if self._workers:
            return
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max(self._n_workers, 8)),
            headers={"User-Agent": "hotline12345-webhook"},
        )
        self._workers = [asyncio.create_task(self._work(), name=f"webhook-{i}") for i in range(self._n_workers)]

    async def close(self, timeout: float = 10.0) -> int:
        """Deliver what can be delivered within `timeout` seconds, then stop.

        Returns how many hand-offs were left undelivered; each of them is logged and reported
        as "dropped" (with the attempts already made), so the call log knows the partner was
        not told.
        """
        if self._closed:
            return 0
        self._closed = True  # from now on submit() drops: nobody would deliver
        if self._workers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), timeout)
            for task in self._workers:
                task.cancel()
            await asyncio.gather(*self._workers, return_exceptions=True)
            self._workers = []
        left = list(self._inflight)
        self._inflight.clear()
        while not self._queue.empty():
            left.append(self._queue.get_nowait())
        for job in left:
            self._drop(job, "shutdown")
        if left:
            log.error("webhook_unflushed", count=len(left), timeout=timeout)
        if self._session is not None:
            await self._session.close()
            self._session = None
        return len(left)

    # -- the call path: never blocks -------------------------------------------------------------
    def submit(self, target: WebhookTarget, handoff: Payload) -> None:
        """Queue one hand-off for `target` and return at once."""
        job = _Job(target, handoff, uuid.uuid4().hex)
        if self._closed:
            self._drop(job, "closed")
            return
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self._drop(job, "queue_full")

    # -- the workers --------------------------------------------------------------------------------
    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            self._inflight.add(job)
            try:
                result = await self._deliver(job)
            except asyncio.CancelledError:
                raise  # close() reports the job still in _inflight
            except Exception:
                # A bug here must not kill the worker (and with it every later delivery).
                log.exception(
                    "webhook_failed",
                    target=job.target.name,
                    call_id=job.handoff.call_id,
                    delivery=job.delivery_id,
                    attempts=job.attempts,
                )
                result = "gave_up"
                self.gave_up += 1
            self._inflight.discard(job)
            self._queue.task_done()
            self._report(job, result)

    async def _deliver(self, job: _Job) -> Result:
        """Attempt until delivered, rejected or out of attempts; logs each step, counts the end."""
        assert self._session is not None
        target, body = job.target, job.handoff.to_json()
        ctx = {"target": target.name, "call_id": job.handoff.call_id, "delivery": job.delivery_id}
        while True:
            job.attempts += 1
            # Signed afresh each attempt: a retry minutes later must not look stale to the partner.
            timestamp = int(self._clock())
            headers = {
                "Content-Type": CONTENT_TYPE,
                "X-Hotline-Timestamp": str(timestamp),
                "X-Hotline-Signature": sign(target.secret, timestamp, body),
                "X-Hotline-Delivery": job.delivery_id,
            }
            retry_after: float | None = None
            why: dict[str, Any]
            try:
                # No redirects: a signed body with personal data goes only to the configured URL.
                async with self._session.post(
                    target.url,
                    data=body,
                    headers=headers,
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=target.timeout_s),
                ) as resp:
                    status = resp.status
                    detail = (await resp.read())[:200].decode("utf-8", "replace")
                    retry_after = _retry_after(resp.headers.get("Retry-After"))
            except aiohttp.InvalidURL as exc:
                # A configuration error: retrying the same URL cannot help.
                self.rejected += 1
                log.error("webhook_rejected", **ctx, attempt=job.attempts, error=f"invalid url: {exc}")
                return "rejected"
            except (aiohttp.ClientError, TimeoutError) as exc:
                why = {"error": type(exc).__name__}
            else:
                if 200 <= status < 300:
                    self.delivered += 1
                    log.info("webhook_delivered", **ctx, attempts=job.attempts, status=status)
                    return "delivered"
                if status != 429 and status < 500:
                    self.rejected += 1
                    log.error("webhook_rejected", **ctx, attempt=job.attempts, status=status, detail=detail)
                    return "rejected"
                why = {"status": status}
            if job.attempts >= self.max_attempts:
                self.gave_up += 1
                log.error("webhook_gave_up", **ctx, attempts=job.attempts, **why)
                return "gave_up"
            wait = self._delay(job.attempts, retry_after)
            log.warning("webhook_retry", **ctx, attempt=job.attempts, retry_in=round(wait, 3), **why)
            await asyncio.sleep(wait)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Exponential (base, 2*base, 4*base ... up to the cap) with jitter.

        The jitter (a random point in the upper half) spreads the retries of many calls after a
        partner outage so they do not arrive in lockstep. A partner's Retry-After is honoured
        up to the cap.
        """
        nominal = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        wait = random.uniform(nominal / 2, nominal)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.backoff_cap))
        return wait

    # -- the end of every hand-off --------------------------------------------------------------
    def _drop(self, job: _Job, reason: str) -> None:
        self.dropped += 1
        log.error(
            "webhook_dropped",
            target=job.target.name,
            call_id=job.handoff.call_id,
            delivery=job.delivery_id,
            reason=reason,
            attempts=job.attempts,
        )
        self._report(job, "dropped")

    def _report(self, job: _Job, result: Result) -> None:
        if self.on_result is None:
            return
        try:
            self.on_result(job.target.name, job.handoff, result, job.attempts)
        except Exception:
            # The recorder's bug must not stop deliveries; it is logged with its traceback.
            log.exception(
                "webhook_result_callback_failed", target=job.target.name, call_id=job.handoff.call_id, result=result
            )


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds; the HTTP-date form is rare for webhooks and ignored."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
