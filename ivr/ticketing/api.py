"""The tickets API for units and partner platforms, served by the controller beside /metrics and /health.

    GET  /api/v1/tickets                  my open tickets (oldest deadline first)
    GET  /api/v1/tickets/{id}             one of my tickets, with its events
    POST /api/v1/tickets/{id}/accept      {}
    POST /api/v1/tickets/{id}/reply       {"text": "答复内容"}   (a partner's reply to a hand-off closes it)
    POST /api/v1/tickets/{id}/close       {"note": "..."}       (note optional)
    POST /api/v1/tickets/{id}/return      {"reason": "..."}

Every request is signed with the caller's key (`hotline api-keys add`), the hand-off webhook's HMAC
(ivr.handoff.webhook.sign) over the nonce, the method, the path and the body, so a signature for one
request is worth nothing for another:

    X-Hotline-Key:        the key id
    X-Hotline-Timestamp:  Unix seconds; refused when more than WINDOW_SECONDS from the controller's clock
    X-Hotline-Nonce:      8-64 of [A-Za-z0-9_-], new for every request; one already seen is refused (replay)
    X-Hotline-Signature:  sign(secret, timestamp, f"{nonce}.{METHOD} {path}.".encode() + body)
                          = "sha256=" + hex HMAC-SHA256(secret, f"{timestamp}.{nonce}.{METHOD} {path}." + body)
    Idempotency-Key:      (optional, POST) 1-64 printable characters: a retry with the same key and the same
                          request gets the first answer again (header Idempotent-Replayed: true), and acts
                          once; the same key with another request is refused (422).

Answers are JSON: {"ticket": {...}} (and "event" after an action), or {"error": "...", "field": "..."}
with 400 (malformed), 401 (signature, key, timestamp), 403 (another unit's ticket), 404 (no such ticket),
409 (replayed nonce; a transition the state does not allow), 422 (idempotency key reused). A refusal
changes nothing and is logged (`tickets_api_refused`, with the key and the reason, never the secret).

After each action the ticket's new status is pushed, signed and retried like a hand-off, to the webhook of
every partner key of the ticket's unit (`ticket_status` events; ivr.handoff.webhook.WebhookSender).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from aiohttp import web

from ivr.errors import CallLogError, HotlineError, TicketError
from ivr.handoff.webhook import WebhookSender, WebhookTarget, sign
from ivr.ticketing.keys import ApiKey, KeyStore
from ivr.ticketing.lifecycle import OPEN_STATES
from ivr.ticketing.store import Change, TicketBook
from ivr.timekeeping import LOCAL_TZ

log = structlog.get_logger("ivr.ticketing.api")

PREFIX = "/api/v1"
WINDOW_SECONDS = 300
NONCE_RE = re.compile(r"[A-Za-z0-9_-]{8,64}")
IDEMPOTENCY_RE = re.compile(r"[\x21-\x7e]{1,64}")
MAX_BODY = 64 * 1024
# What each action's body may carry, and which of the book's arguments it becomes.
ACTIONS: dict[str, dict[str, str]] = {
    "accept": {},
    "reply": {"text": "text"},
    "close": {"note": "text"},
    "return": {"reason": "reason"},
}


def signed_message(nonce: str, method: str, path: str, body: bytes) -> bytes:
    """What the signature covers after the timestamp (ivr.handoff.webhook.sign adds `{timestamp}.`)."""
    return f"{nonce}.{method.upper()} {path}.".encode() + body


def signature(secret: str, timestamp: int, nonce: str, method: str, path: str, body: bytes) -> str:
    """The X-Hotline-Signature a client sends (and the controller expects)."""
    return sign(secret.encode(), timestamp, signed_message(nonce, method, path, body))


class Refused(HotlineError):
    def __init__(self, status: int, reason: str, field: str = "") -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.field = field


def _iso(seconds: float | None) -> str | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, LOCAL_TZ).isoformat(timespec="seconds")


def public(row: dict[str, Any]) -> dict[str, Any]:
    """A ticket as the API shows it: no internal columns, times as ISO 8601 with the city's offset."""
    return {
        "ticket_id": row["ticket_id"],
        "call_id": row["call_id"],
        "kind": row["kind"],
        "unit": row["unit"],
        "state": row["state"],
        "summary": row["summary"],
        "category": row["category"],
        "urgency": row["urgency"],
        "reply": row["reply"],
        "created": _iso(row["created_at"]),
        "deadline": _iso(row["deadline_at"]),
        "closed": _iso(row["closed_at"]),
        "version": row["version"],
    }


@dataclass(frozen=True)
class StatusChange:
    """A ticket's new status, pushed to a partner's webhook (the WebhookSender's payload)."""

    ticket: dict[str, Any]
    action: str
    actor: str
    at: float

    @property
    def call_id(self) -> str:
        return str(self.ticket["call_id"])

    @property
    def ticket_id(self) -> str:
        return str(self.ticket["ticket_id"])

    def to_json(self) -> bytes:
        body = {"event": "ticket_status", "action": self.action, "actor": self.actor, "at": _iso(self.at)}
        return json.dumps({**body, "ticket": public(self.ticket)}, ensure_ascii=False, separators=(",", ":")).encode()


class TicketsApi:
    """The handlers; `routes()` for the controller's aiohttp application."""

    def __init__(
        self,
        book: TicketBook,
        keys: KeyStore,
        *,
        pusher: WebhookSender | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.book = book
        self.keys = keys
        self.pusher = pusher
        self._clock = clock

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(f"{PREFIX}/tickets", self._list),
            web.get(f"{PREFIX}/tickets/{{ticket_id}}", self._show),
            web.post(f"{PREFIX}/tickets/{{ticket_id}}/{{action}}", self._act),
        ]

    # -- the handlers ---------------------------------------------------------------------------
    async def _list(self, request: web.Request) -> web.Response:
        async def answer(key: ApiKey, _: bytes) -> tuple[int, dict[str, Any]]:
            rows = await asyncio.to_thread(self.book.find, unit=key.unit, states=OPEN_STATES)
            return 200, {"tickets": [public(r) for r in rows]}

        return await self._handle(request, answer)

    async def _show(self, request: web.Request) -> web.Response:
        ticket_id = request.match_info["ticket_id"]

        async def answer(key: ApiKey, _: bytes) -> tuple[int, dict[str, Any]]:
            row = await asyncio.to_thread(self.book.get, ticket_id)
            if row["unit"] != key.unit:
                raise Refused(403, f"ticket {ticket_id} is not {key.unit}'s")
            events = await asyncio.to_thread(self.book.events, ticket_id)
            shown = [{k: e[k] for k in ("seq", "action", "actor", "from_state", "to_state", "detail")} for e in events]
            for e, original in zip(shown, events, strict=True):
                e["at"] = _iso(original["at"])
            return 200, {"ticket": public(row), "events": shown}

        return await self._handle(request, answer)

    async def _act(self, request: web.Request) -> web.Response:
        ticket_id, action = request.match_info["ticket_id"], request.match_info["action"]

        async def answer(key: ApiKey, body: bytes) -> tuple[int, dict[str, Any]]:
            if action not in ACTIONS:
                raise Refused(404, f"no action {action!r} (one of: {', '.join(ACTIONS)})", "action")
            args = _arguments(action, body)
            change = await asyncio.to_thread(
                self.book.act, ticket_id, action, actor=key.actor, only_unit=key.unit, **args
            )
            self._push(change)
            event = change.event
            shown = {"action": event.action.value, "actor": event.actor, "at": _iso(event.at)}
            return 200, {"ticket": public(change.ticket), "event": {**shown, "detail": dict(event.detail)}}

        return await self._handle(request, answer, idempotent=True)

    # -- what every request goes through --------------------------------------------------------
    async def _handle(
        self,
        request: web.Request,
        answer: Callable[[ApiKey, bytes], Any],
        *,
        idempotent: bool = False,
    ) -> web.Response:
        key_id = request.headers.get("X-Hotline-Key", "")
        try:
            body = await request.content.read(MAX_BODY + 1)
            if len(body) > MAX_BODY:
                raise Refused(413, f"body longer than {MAX_BODY} bytes")
            key = await self._authenticate(request, body)
            idem = request.headers.get("Idempotency-Key") if idempotent else None
            digest = hashlib.sha256(f"{request.method} {request.path_qs}\n".encode() + body).hexdigest()
            if idem is not None:
                if not IDEMPOTENCY_RE.fullmatch(idem):
                    raise Refused(400, "Idempotency-Key must be 1-64 printable ASCII characters", "Idempotency-Key")
                earlier = await asyncio.to_thread(self._earlier, key.key_id, idem)
                if earlier is not None:
                    if earlier["request"] != digest:
                        raise Refused(422, f"Idempotency-Key {idem!r} was used for another request", "Idempotency-Key")
                    log.info("tickets_api_replayed_answer", key=key.key_id, path=request.path)
                    return web.json_response(
                        json.loads(earlier["response"]),
                        status=int(earlier["status"]),
                        headers={"Idempotent-Replayed": "true"},
                    )
            try:
                status, payload = await answer(key, body)
            except TicketError as exc:
                raise Refused(exc.status, str(exc)) from None
            except Refused as exc:
                if idem is not None:  # a refusal of the request itself is its answer too
                    await asyncio.to_thread(self._remember, key.key_id, idem, digest, exc.status, _error(exc))
                raise
            if idem is not None:
                await asyncio.to_thread(self._remember, key.key_id, idem, digest, status, payload)
            return web.json_response(payload, status=status)
        except Refused as exc:
            log.warning(
                "tickets_api_refused",
                key=key_id[:40],
                method=request.method,
                path=request.path[:200],
                status=exc.status,
                reason=exc.reason,
            )
            return web.json_response(_error(exc), status=exc.status)
        except CallLogError as exc:
            log.error("tickets_api_storage", key=key_id[:40], path=request.path[:200], error=str(exc))
            return web.json_response({"error": "the call log cannot be reached now; retry later"}, status=503)

    async def _authenticate(self, request: web.Request, body: bytes) -> ApiKey:
        headers = request.headers
        for name in ("X-Hotline-Key", "X-Hotline-Timestamp", "X-Hotline-Nonce", "X-Hotline-Signature"):
            if not headers.get(name):
                raise Refused(401, f"header {name} missing", name)
        key = self.keys.get(headers["X-Hotline-Key"])
        if key is None:
            raise Refused(401, "unknown key", "X-Hotline-Key")
        try:
            timestamp = int(headers["X-Hotline-Timestamp"])
        except ValueError:
            raise Refused(401, "X-Hotline-Timestamp must be Unix seconds", "X-Hotline-Timestamp") from None
        now = self._clock()
        if abs(now - timestamp) > WINDOW_SECONDS:
            raise Refused(
                401,
                f"timestamp {timestamp} is more than {WINDOW_SECONDS} s from now ({int(now)})",
                "X-Hotline-Timestamp",
            )
        nonce = headers["X-Hotline-Nonce"]
        if not NONCE_RE.fullmatch(nonce):
            raise Refused(401, "X-Hotline-Nonce must be 8-64 of A-Z a-z 0-9 _ -", "X-Hotline-Nonce")
        expected = signature(key.secret, timestamp, nonce, request.method, request.path_qs, body)
        given = headers["X-Hotline-Signature"]
        if not hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace")):
            raise Refused(401, "bad signature", "X-Hotline-Signature")
        if not await asyncio.to_thread(self._first_use, key.key_id, nonce, now):
            raise Refused(409, "replayed: this nonce was used already", "X-Hotline-Nonce")
        return key

    # -- what the API remembers (in the call log: shared by a cluster's controllers) --------------
    def _first_use(self, key_id: str, nonce: str, now: float) -> bool:
        with self.book.calllog.transaction() as db:
            # Nonces older than the window cannot come back (their timestamp would be refused).
            db.execute("DELETE FROM api_nonces WHERE at < ?", (now - 2 * WINDOW_SECONDS,))
            cur = db.execute(
                "INSERT INTO api_nonces (key_id, nonce, at) VALUES (?, ?, ?) ON CONFLICT (key_id, nonce) DO NOTHING",
                (key_id, nonce, now),
            )
            return bool(cur.rowcount == 1)

    def _earlier(self, key_id: str, idem: str) -> dict[str, Any] | None:
        with self.book.calllog.transaction() as db:
            rows = db.rows(
                "SELECT request, status, response FROM api_idempotency WHERE key_id = ? AND idempotency_key = ?",
                (key_id, idem),
            )
        return rows[0] if rows else None

    def _remember(self, key_id: str, idem: str, digest: str, status: int, payload: dict[str, Any]) -> None:
        with self.book.calllog.transaction() as db:
            db.execute(
                "INSERT INTO api_idempotency (key_id, idempotency_key, request, status, response, at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key_id, idempotency_key) DO NOTHING",
                (key_id, idem, digest, status, json.dumps(payload, ensure_ascii=False), self._clock()),
            )

    # -- the push ---------------------------------------------------------------------------------
    def _push(self, change: Change) -> None:
        push_status(self.pusher, self.keys, change)


def push_status(pusher: WebhookSender | None, keys: KeyStore, change: Change) -> int:
    """Queue the ticket's new status for every partner webhook of its unit; how many were queued."""
    if pusher is None:
        return 0
    unit = change.ticket["unit"]
    status = StatusChange(change.ticket, change.event.action.value, change.event.actor, change.event.at)
    queued = 0
    for key in keys.all():
        if key.kind == "partner" and key.webhook and key.unit == unit:
            pusher.submit(WebhookTarget(key.key_id, key.webhook, key.secret.encode()), status)
            queued += 1
    return queued


def _arguments(action: str, body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"{}")
    except ValueError as exc:
        raise Refused(400, f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise Refused(400, "body must be a JSON object")
    allowed = ACTIONS[action]
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        expected = ", ".join(allowed) or "nothing"
        raise Refused(400, f"{action}: unknown field {unknown[0]!r} (expected: {expected})", unknown[0])
    out: dict[str, Any] = {}
    for name, arg in allowed.items():
        if name in data:
            if not isinstance(data[name], str):
                raise Refused(400, f"{action}: field {name!r} must be a string", name)
            out[arg] = data[name]
    return out


def _error(exc: Refused) -> dict[str, Any]:
    return {"error": exc.reason, **({"field": exc.field} if exc.field else {})}


__all__ = ["TicketsApi", "push_status", "signature", "signed_message"]
