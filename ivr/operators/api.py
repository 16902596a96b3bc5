"""The operators' HTTP API on the controller's server: seat states and transfers, for tools and scripts.

The web console (ivr.console, its own logins) drives the same seats and calls. Here authentication is
`Authorization: Bearer TOKEN`, where TOKEN is a
seat's own token (`hotline seats token SEAT`: acts on that seat and the call at it only) or the
supervisor's (`hotline seats token '*'`: every seat). Both are derived from the controller's
caller-hash key (ivr.operators.desk.seat_token), so there is no new secret to keep.

    GET  /api/v1/seats                        every seat: state, reason, the call it holds
    POST /api/v1/seats/{seat}/state           {"state": "ready" | "paused" | "signed_out", "reason": "..."}
    GET  /api/v1/operator-calls               the calls at an operator now (call id, seat, what it is doing)
    POST /api/v1/operator-calls/{call_id}/transfer   {"kind": "consult" | "three-way" | "blind" | "emergency",
                                                     "target": a number (or id) of routes.yaml}
    POST /api/v1/operator-calls/{call_id}/complete   a consult: citizen to department; a three-way: operator leaves
    POST /api/v1/operator-calls/{call_id}/cancel     drop the department, back to the citizen

Every refusal is JSON {"error": "..."} and changes nothing: 400 malformed, 401 no or wrong token,
403 another operator's seat or call, 404 no such seat or call, 409 a call that already ended or an
ask its state does not allow, 422 a number not in routes.yaml.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from ivr.errors import SeatStateError, TransferRefused
from ivr.operators.desk import TRANSFER_ACTIONS, Command, Desk, token_seat
from ivr.operators.queue import SeatPool

log = structlog.get_logger("ivr.operators.api")

PREFIX = "/api/v1"
REPLY_WAIT_S = 3.0  # how long a request waits to hear the call take its ask (dialling takes longer)
MAX_BODY = 4096

Handler = Callable[[web.Request], Awaitable[web.Response]]


def _refuse(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class OperatorsApi:
    def __init__(self, pool: SeatPool, desk: Desk, key: bytes) -> None:
        self.pool = pool
        self.desk = desk
        self._key = key

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(f"{PREFIX}/seats", self._seats),
            web.post(f"{PREFIX}/seats/{{seat}}/state", self._state),
            web.get(f"{PREFIX}/operator-calls", self._calls),
            web.post(f"{PREFIX}/operator-calls/{{call_id}}/{{action}}", self._act),
        ]

    # -- who is asking ----------------------------------------------------------------------------
    def _who(self, request: web.Request) -> str | None:
        """The asking seat ('*': the supervisor); None if the token is missing or wrong."""
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return None
        names = [seat.name for seat in self.pool.snapshot().seats]
        return token_seat(self._key, header[len("Bearer ") :].strip(), names)

    async def _body(self, request: web.Request) -> dict[str, Any]:
        raw = await request.content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            raise TransferRefused(f"the body is over {MAX_BODY} bytes")
        try:
            body = json.loads(raw or b"{}")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TransferRefused(f"the body is not JSON: {exc}") from None
        if not isinstance(body, dict) or not all(isinstance(v, str) for v in body.values()):
            raise TransferRefused('the body must be a JSON object of strings, e.g. {"state": "ready"}')
        return body

    # -- seats ------------------------------------------------------------------------------------
    async def _seats(self, request: web.Request) -> web.Response:
        who = self._who(request)
        if who is None:
            return _refuse(401, "a seat's or the supervisor's token is needed (Authorization: Bearer ...)")
        snapshot = self.pool.snapshot()
        seats = [
            {
                "seat": s.name,
                "state": s.status,
                "reason": s.reason,
                "after_call": s.after_call,
                "call_id": s.call_id,
            }
            for s in snapshot.seats
            if who in ("*", s.name)
        ]
        return web.json_response({"seats": seats, "waiting": snapshot.waiting})

    async def _state(self, request: web.Request) -> web.Response:
        who = self._who(request)
        if who is None:
            return _refuse(401, "a seat's or the supervisor's token is needed (Authorization: Bearer ...)")
        seat = request.match_info["seat"]
        if who not in ("*", seat):
            return _refuse(403, f"your token is seat {who}'s, not {seat}'s")
        try:
            body = await self._body(request)
            state = body.get("state", "")
            change = self.pool.set_state(seat, state, reason=body.get("reason", ""), by="api" if who != "*" else "cli")
        except TransferRefused as exc:
            return _refuse(exc.status, str(exc))
        except SeatStateError as exc:
            return _refuse(404 if str(exc).startswith("no seat") else 400, str(exc))
        return web.json_response(
            {"seat": seat, "state": change.state, "reason": change.reason, "pending": change.pending}
        )

    # -- calls ------------------------------------------------------------------------------------
    async def _calls(self, request: web.Request) -> web.Response:
        who = self._who(request)
        if who is None:
            return _refuse(401, "a seat's or the supervisor's token is needed (Authorization: Bearer ...)")
        calls = [
            {"call_id": c.call_id, "seat": c.seat, "state": c.state, "since": c.since}
            for c in self.desk.calls()
            if who in ("*", c.seat)
        ]
        return web.json_response({"calls": calls})

    async def _act(self, request: web.Request) -> web.Response:
        who = self._who(request)
        if who is None:
            return _refuse(401, "a seat's or the supervisor's token is needed (Authorization: Bearer ...)")
        call_id, action = request.match_info["call_id"], request.match_info["action"]
        try:
            body = await self._body(request)
            if action == "transfer":
                kind = body.get("kind", "")
                if kind not in TRANSFER_ACTIONS:
                    raise TransferRefused(f"kind must be one of {', '.join(sorted(TRANSFER_ACTIONS))}; got {kind!r}")
                command = Command(kind, body.get("target", ""), by="api")
            elif action in ("complete", "cancel"):
                command = Command("complete" if action == "complete" else "cancel", by="api")
            else:
                raise TransferRefused(f"unknown action {action!r} (transfer, complete, cancel)", 404)
            command.reply = asyncio.get_running_loop().create_future()
            live = self.desk.submit(call_id, command, seat=None if who == "*" else who)
        except TransferRefused as exc:
            log.info(
                "operator_ask_refused", call_id=call_id[:40], action=action[:20], status=exc.status, reason=str(exc)
            )
            return _refuse(exc.status, str(exc))
        try:
            said = await asyncio.wait_for(asyncio.shield(command.reply), REPLY_WAIT_S)
        except TimeoutError:
            return web.json_response({"call_id": call_id, "seat": live.seat, "result": "queued"}, status=202)
        if said.startswith("refused"):
            return _refuse(409, said)
        return web.json_response({"call_id": call_id, "seat": live.seat, "result": said})
