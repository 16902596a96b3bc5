"""The operator console: an aiohttp sub-application mounted at /console/ on the controller's HTTP server
(loopback by default, HOTLINE_METRICS_ADDR; put TLS or a reverse proxy in front for other machines).

    GET  /console/login           the login form              POST /console/login     sign in
    POST /console/logout          sign out
    GET  /console/                the operator's page (server-rendered, a little plain JS)
    GET  /console/events          live updates (Server-Sent Events): the seat, the screen pop
    POST /console/seat            {"state": "ready" | "paused" | "signed_out", "reason": "..."}: my seat
    POST /console/calls/{call_id}/transfer   {"kind": consult|three-way|blind|emergency, "target": ...}
    POST /console/calls/{call_id}/complete   POST /console/calls/{call_id}/cancel
    POST /console/calls/{call_id}/ticket     {"summary", "category", "unit", "urgency"}: the call's ticket
    GET  /console/supervisor      every seat, the queue (supervisor role)
    GET  /console/recordings      call recordings, ?unit= &day=YYYY-MM-DD (supervisor; numbers masked)
    GET  /console/messages        messages (留言) not yet handled, ?all=1 with the handled ones (supervisor)
    GET  /console/recordings/{name}/audio?reason=...[&download=1]   the file, checked against its SHA-256;
                                  logged first as an export (who, which, why), as `hotline recordings export`
    POST /console/messages/{name}/handled   a message called back, by this supervisor
    POST /console/supervisor/seats/{seat}/{mode}   listen | whisper | barge | stop, {"call_id": optional}:
                                  the supervisor's phone is rung and hears the seat's call (ivr.operators.supervise)

Every route but the login form needs a session of its role (ROLE_OF: the test lists the routes from
the app itself and checks each); every POST needs the session's CSRF token. A refusal is JSON
{"error": ...} with a 4xx status and changes nothing; every action and refusal is audited in the
call log (ivr.console.audit).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jinja2
import structlog
from aiohttp import web

from ivr.calllog.records import CallRecord
from ivr.console.accounts import AccountStore
from ivr.console.audit import ConsoleAction
from ivr.console.screen import Hotline, history, pop, seat_state, seat_view, transfer_targets
from ivr.console.sessions import COOKIE, Session, Sessions, csrf_ok
from ivr.errors import HotlineError, SeatStateError, TicketError, TransferRefused, UnknownTicket
from ivr.operators.desk import TRANSFER_ACTIONS, Command
from ivr.recording import catalog
from ivr.recording.catalog import verify
from ivr.report import figures as report
from ivr.ticketing.lifecycle import URGENCIES
from ivr.tickets import from_epoch, new_ticket

log = structlog.get_logger("ivr.console.web")

MAX_BODY = 8192
REPLY_WAIT_S = 3.0  # how long a transfer ask waits to hear the call take it
EVENT_INTERVAL_S = 1.0
TODAY_EVERY_S = 30.0
LOGIN_COOKIE = "hotline_login"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Which role each route needs: None = anyone (the login itself), "any" = any signed-in account.
ROLE_OF: dict[str, str | None] = {
    "login_form": None,
    "login": None,
    "logout": "any",
    "page": "operator",
    "events": "operator",
    "seat": "operator",
    "call_action": "operator",
    "ticket": "operator",
    "supervisor": "supervisor",
    "supervisor_events": "supervisor",
    "recordings": "supervisor",
    "messages": "supervisor",
    "recording_audio": "supervisor",
    "message_handled": "supervisor",
    "supervise": "supervisor",
}

SESSION_KEY = web.RequestKey("session", Session)

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


class Refused(HotlineError):
    """A console request refused with an HTTP status; nothing was changed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _refuse(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class Console:
    def __init__(self, hotline: Hotline, accounts: AccountStore, sessions: Sessions | None = None) -> None:
        self.hotline = hotline
        self.accounts = accounts
        self.sessions = sessions or Sessions()
        self._history: dict[str, dict[str, Any]] = {}  # call id -> the caller's history, read once per call
        self._today: tuple[float, dict[str, Any]] | None = None  # (read at, today's figures)

    # -- the app ----------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=MAX_BODY)
        app.router.add_get("/login", self._login_form, name="login_form")
        app.router.add_post("/login", self._login, name="login")
        app.router.add_post("/logout", self._logout, name="logout")
        app.router.add_get("/", self._page, name="page")
        app.router.add_get("/events", self._events, name="events")
        app.router.add_post("/seat", self._seat, name="seat")
        app.router.add_post("/calls/{call_id}/ticket", self._ticket, name="ticket")
        app.router.add_post("/calls/{call_id}/{action}", self._call_action, name="call_action")
        app.router.add_get("/supervisor", self._supervisor, name="supervisor")
        app.router.add_get("/supervisor/events", self._supervisor_events, name="supervisor_events")
        app.router.add_get("/recordings", self._recordings, name="recordings")
        app.router.add_get("/messages", self._messages, name="messages")
        app.router.add_get("/recordings/{name}/audio", self._recording_audio, name="recording_audio")
        app.router.add_post("/messages/{name}/handled", self._message_handled, name="message_handled")
        app.router.add_post("/supervisor/seats/{seat}/{mode}", self._supervise, name="supervise")
        return app

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Session, role and CSRF for every route, before its handler runs (ROLE_OF)."""
        name = request.match_info.route.name
        if name is None or name not in ROLE_OF:  # 404/405 from the router, or a route nobody classified
            if name is not None:
                return _refuse(403, "route without a role")
            return await handler(request)
        role = ROLE_OF[name]
        if role is None:
            return await handler(request)
        session = self.sessions.get(request.cookies.get(COOKIE))
        if session is not None and self.accounts.get(session.name) != session.account:
            self.sessions.close(session.id)  # removed, or its password or role changed since the login
            session = None
        if session is None:
            if request.method == "GET" and name in ("page", "supervisor", "recordings", "messages"):
                raise web.HTTPSeeOther(request.app.router["login_form"].url_for())
            return _refuse(401, "sign in first (the session is missing or expired)")
        if role != "any" and session.role != role:
            self._audit(request, session, name, "", f"refused: needs the {role} role")
            return _refuse(403, f"this needs the {role} role; {session.name} is {session.role}")
        if request.method == "POST":
            token = request.headers.get("X-CSRF-Token")
            if token is None and request.content_type == "application/x-www-form-urlencoded":
                token = str((await request.post()).get("csrf", ""))
            if not csrf_ok(session, token):
                self._audit(request, session, name, "", "refused: bad CSRF token")
                return _refuse(403, "the CSRF token is missing or wrong: reload the page")
        request[SESSION_KEY] = session
        return await handler(request)

    # -- audit ------------------------------------------------------------------------------------
    def _audit(
        self, request: web.Request, who: Session | str, action: str, target: str, result: str, **detail: Any
    ) -> None:
        self._audit_from(request.remote or "", who, action, target, result, **detail)

    def _audit_from(
        self, address: str, who: Session | str, action: str, target: str, result: str, **detail: Any
    ) -> None:
        account, role = (who.name, who.role) if isinstance(who, Session) else (who, "")
        entry = ConsoleAction(
            time.time(),
            account[:40],
            role,
            address,
            action,
            target[:80],
            result[:300],
            json.dumps(detail, ensure_ascii=False),
        )
        self.hotline.calllog.record(entry)
        log.info("console_action", account=entry.account, action=action, target=entry.target, result=entry.result)

    # -- login ------------------------------------------------------------------------------------
    async def _login_form(self, request: web.Request, error: str = "", status: int = 200) -> web.Response:
        token = secrets.token_urlsafe(24)
        html = _templates.get_template("login.html.j2").render(token=token, error=error)
        response = web.Response(text=html, content_type="text/html", status=status)
        response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="Strict", path="/console/")
        return response

    async def _login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        name, password = str(form.get("name", ""))[:40], str(form.get("password", ""))
        sent, kept = str(form.get("csrf", "")), request.cookies.get(LOGIN_COOKIE, "")
        if not kept or not secrets.compare_digest(sent.encode(), kept.encode()):
            self._audit(request, name, "login", "", "refused: bad login form token")
            return await self._login_form(request, "The form expired: try again.", 403)
        account = await asyncio.to_thread(self.accounts.verify, name, password)
        if account is None:
            self._audit(request, name, "login", "", "refused: wrong name or password")
            return await self._login_form(request, "Wrong name or password.", 401)
        session = self.sessions.open(account)
        self._audit(request, session, "login", account.seat, "ok")
        page = "supervisor" if account.role == "supervisor" else "page"
        response = web.Response(status=303, headers={"Location": str(request.app.router[page].url_for())})
        response.set_cookie(COOKIE, session.id, httponly=True, samesite="Strict", path="/console/")
        response.del_cookie(LOGIN_COOKIE, path="/console/")
        return response

    async def _logout(self, request: web.Request) -> web.StreamResponse:
        session = request[SESSION_KEY]
        self.sessions.close(session.id)
        self._audit(request, session, "logout", "", "ok")
        response = web.Response(status=303, headers={"Location": str(request.app.router["login_form"].url_for())})
        response.del_cookie(COOKIE, path="/console/")
        return response

    # -- the operator's page ----------------------------------------------------------------------
    async def _page(self, request: web.Request) -> web.Response:
        session = request[SESSION_KEY]
        html = _templates.get_template("console.html.j2").render(
            name=session.name,
            seat=session.account.seat,
            csrf=session.csrf,
            targets=transfer_targets(self.hotline.table()),
            urgencies=URGENCIES,
        )
        return web.Response(text=html, content_type="text/html")

    async def state_of(self, session: Session) -> dict[str, Any]:
        """What the operator's page shows now: their seat, and the screen pop of the call at it."""
        view = seat_view(self.hotline, session.account.seat)
        if view is None:
            return {"seat": {"seat": session.account.seat, "state": "unknown"}, "call": None}
        call = pop(self.hotline, view)
        if call is not None:
            if call["call_id"] not in self._history:
                record = self.hotline.record(call["call_id"])
                assert record is not None
                self._history[call["call_id"]] = await asyncio.to_thread(
                    history, self.hotline.calllog, record.caller_hash, record.call_id
                )
                while len(self._history) > 200:
                    self._history.pop(next(iter(self._history)))
            call.update(self._history[call["call_id"]])
        return {"seat": seat_state(view), "call": call}

    async def _events(self, request: web.Request) -> web.StreamResponse:
        session = request[SESSION_KEY]
        return await self._stream(request, session, lambda: self.state_of(session))

    async def _stream(
        self, request: web.Request, session: Session, state: Callable[[], Awaitable[dict[str, Any]]]
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        await response.prepare(request)
        sent = ""
        while self.sessions.get(session.id) is session and self.accounts.get(session.name) == session.account:
            now = json.dumps(await state(), ensure_ascii=False, sort_keys=True)
            if now != sent:
                await response.write(f"data: {now}\n\n".encode())
                sent = now
            else:
                await response.write(b": keep-alive\n\n")
            await asyncio.sleep(EVENT_INTERVAL_S)
        await response.write(b'event: expired\ndata: "sign in again"\n\n')
        return response

    async def _body(self, request: web.Request) -> dict[str, str]:
        try:
            body = json.loads(await request.read() or b"{}")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise Refused(400, f"the body is not JSON: {exc}") from None
        if not isinstance(body, dict) or not all(isinstance(v, str) for v in body.values()):
            raise Refused(400, 'the body must be a JSON object of strings, e.g. {"state": "ready"}')
        return body

    async def _seat(self, request: web.Request) -> web.Response:
        session = request[SESSION_KEY]
        try:
            body = await self._body(request)
            seat = body.get("seat", session.account.seat)
            if seat != session.account.seat:
                raise Refused(403, f"seat {seat[:40]} is not yours ({session.name} sits at {session.account.seat})")
            change = self.hotline.seats.set_state(seat, body.get("state", ""), body.get("reason", ""), by="console")
        except Refused as exc:
            self._audit(request, session, "seat_state", session.account.seat, f"refused: {exc}")
            return _refuse(exc.status, str(exc))
        except SeatStateError as exc:
            self._audit(request, session, "seat_state", session.account.seat, f"refused: {exc}")
            return _refuse(400, str(exc))
        self._audit(request, session, "seat_state", seat, "ok", state=change.state, pending=change.pending)
        return web.json_response({"seat": seat, "state": change.state, "pending": change.pending})

    async def _call_action(self, request: web.Request) -> web.Response:
        session = request[SESSION_KEY]
        call_id, action = request.match_info["call_id"], request.match_info["action"]
        try:
            body = await self._body(request)
            if action == "transfer":
                kind = body.get("kind", "")
                if kind not in TRANSFER_ACTIONS:
                    raise Refused(400, f"kind must be one of {', '.join(sorted(TRANSFER_ACTIONS))}; got {kind[:20]!r}")
                command = Command(kind, body.get("target", ""), by="console")  # type: ignore[arg-type]
            elif action in ("complete", "cancel"):
                command = Command("complete" if action == "complete" else "cancel", by="console")
            else:
                raise Refused(404, f"unknown action {action[:20]!r} (transfer, complete, cancel)")
            command.reply = asyncio.get_running_loop().create_future()
            self.hotline.desk().submit(call_id, command, seat=session.account.seat)
        except Refused as exc:
            self._audit(request, session, action[:20], call_id, f"refused: {exc}")
            return _refuse(exc.status, str(exc))
        except TransferRefused as exc:
            self._audit(request, session, action[:20], call_id, f"refused: {exc}")
            return _refuse(exc.status, str(exc))
        try:
            said = await asyncio.wait_for(asyncio.shield(command.reply), REPLY_WAIT_S)
        except TimeoutError:
            said = "queued"
        self._audit(request, session, action, call_id, said, kind=command.action, to=command.target[:40])
        if said.startswith("refused"):
            return _refuse(409, said)
        return web.json_response({"call_id": call_id, "result": said}, status=202 if said == "queued" else 200)

    async def _ticket(self, request: web.Request) -> web.Response:
        """The ticket form: the call's ticket gets its 诉求 summary, category and urgency, dispatched to the unit."""
        session = request[SESSION_KEY]
        call_id = request.match_info["call_id"]
        try:
            body = await self._body(request)
            live = self.hotline.desk().on_seat(session.account.seat)
            if live is None or live.call_id != call_id:
                raise Refused(409, f"call {call_id[:40]} is not at your seat now (ended or transferred)")
            record = self.hotline.record(call_id)
            if record is None:
                raise Refused(409, f"call {call_id[:40]} has already ended")
            unit = body.get("unit", "")
            if unit not in {r.unit for r in self.hotline.table().routes.values()}:
                raise Refused(422, f"unit {unit[:40]!r} is not a unit of routes.yaml")
            if not body.get("summary", "").strip():
                raise Refused(400, "the 诉求 summary is empty")
            ticket_id = await self._ticket_of(record)
            change = await asyncio.to_thread(
                self.hotline.tickets().act,
                ticket_id,
                "dispatch",
                actor=f"console:{session.name}",
                unit=unit,
                summary=body.get("summary", ""),
                category=body.get("category", ""),
                urgency=body.get("urgency", "normal"),
            )
        except Refused as exc:
            self._audit(request, session, "ticket", call_id, f"refused: {exc}")
            return _refuse(exc.status, str(exc))
        except TicketError as exc:
            self._audit(request, session, "ticket", call_id, f"refused: {exc}")
            return _refuse(409, str(exc))
        self._audit(request, session, "ticket", call_id, "ok", ticket_id=ticket_id, unit=unit)
        return web.json_response({"ticket_id": ticket_id, "state": change.ticket["state"], "unit": unit})

    async def _ticket_of(self, record: CallRecord) -> str:
        """The call's ticket, opened now (an operator's 工单) if the call has none yet."""
        if not record.ticket_id:
            svc = self.hotline.services()
            ticket = new_ticket(record.call_id, "operator", "", "operator", "", svc.clock(), svc.deadlines, svc.node)
            record.ticket(ticket.ticket_id, "operator")
            self.hotline.calllog.ticket_opened(ticket)
        # The opening goes through the call log's writer thread: wait until it is written.
        for _ in range(50):
            try:
                await asyncio.to_thread(self.hotline.tickets().get, record.ticket_id)
                return record.ticket_id
            except UnknownTicket:
                await asyncio.sleep(0.1)
        raise Refused(503, f"ticket {record.ticket_id} is not in the call log yet (is it writable?): try again")

    # -- the supervisor's page --------------------------------------------------------------------
    async def today(self) -> dict[str, Any]:
        """Today's figures (Beijing day), as the 通报考核 report counts them; read at most every 30 s."""
        now = time.time()
        if self._today is None or now - self._today[0] > TODAY_EVERY_S:
            day = from_epoch(now).date()
            table = self.hotline.table()

            def read() -> dict[str, Any]:
                centre = report.build(report.load(self.hotline.calllog, day, day), day, day, as_of=now, table=table)
                c = centre.centre
                return {
                    "day": day.isoformat(),
                    "calls": c.calls,
                    "answered_by_a_person": c.connected,
                    "connection_pct": c.connection_pct,
                    "person_15s_pct": c.person_15s_pct,
                    "abandoned": c.abandoned,
                    "messages": c.messages,
                }

            self._today = (now, await asyncio.to_thread(read))
        return self._today[1]

    def wallboard(self) -> dict[str, Any]:
        snapshot = self.hotline.seats.snapshot()
        oldest = [self.hotline.record(c) for c in snapshot.queue]
        waits = [time.time() - r.started_at for r in oldest if r is not None]
        return {
            "seats": [
                {
                    **seat_state(s),
                    "call": (pop(self.hotline, s) or {}).get("menu_path", ""),
                    "call_id": live.call_id if (live := self.hotline.desk().on_seat(s.name)) is not None else "",
                }
                for s in snapshot.seats
            ],
            "waiting": snapshot.waiting,
            "longest_wait_s": round(max(waits), 1) if waits else 0,
            "counters": dataclasses.asdict(snapshot.counters),
            "supervising": [
                {"supervisor": s.supervisor, "seat": s.seat, "mode": s.mode, "answered": s.answered_at is not None}
                for s in (self.hotline.supervisors.active() if self.hotline.supervisors else [])
            ],
        }

    async def _supervisor(self, request: web.Request) -> web.Response:
        session = request[SESSION_KEY]
        html = _templates.get_template("supervisor.html.j2").render(name=session.name, csrf=session.csrf)
        return web.Response(text=html, content_type="text/html")

    async def _supervisor_events(self, request: web.Request) -> web.StreamResponse:
        session = request[SESSION_KEY]

        async def state() -> dict[str, Any]:
            return {**self.wallboard(), "today": await self.today()}

        return await self._stream(request, session, state)

    # -- recordings and messages (ivr.recording) ---------------------------------------------------
    async def _recordings(self, request: web.Request) -> web.Response:
        return await self._listing(request, "call")

    async def _messages(self, request: web.Request) -> web.Response:
        return await self._listing(request, "message")

    async def _listing(self, request: web.Request, kind: str) -> web.Response:
        """Recordings or messages, filtered by unit and day; caller numbers masked (catalog rows carry no other)."""
        session = request[SESSION_KEY]
        unit, day_text = request.query.get("unit", "")[:40], request.query.get("day", "")[:10]
        show_all = request.query.get("all") == "1"
        error = ""
        day = None
        if day_text:
            try:
                day = dt.date.fromisoformat(day_text)
            except ValueError:
                error = f"day must be YYYY-MM-DD, got {day_text!r}"
        flt = catalog.Filter(kind=kind, unit=unit, day=day, open_only=kind == "message" and not show_all)
        rows = [] if error else await asyncio.to_thread(catalog.find, self.hotline.calllog, flt)
        units = sorted({r.unit for r in self.hotline.table().routes.values()})
        html = _templates.get_template("recordings.html.j2").render(
            name=session.name,
            csrf=session.csrf,
            kind=kind,
            rows=[{**r, "when": from_epoch(r["started_at"]).strftime("%Y-%m-%d %H:%M:%S")} for r in rows],
            units=units,
            unit=unit,
            day=day_text,
            show_all=show_all,
            error=error,
        )
        return web.Response(text=html, content_type="text/html", status=400 if error else 200)

    async def _recording_audio(self, request: web.Request) -> web.StreamResponse:
        """A recording or message, to play or download: refused without a reason; logged before it is sent."""
        session = request[SESSION_KEY]
        name = request.match_info["name"][:80]
        reason = request.query.get("reason", "").strip()[:200]
        how = "download" if request.query.get("download") == "1" else "play"
        if not reason:
            self._audit(request, session, f"recording_{how}", name, "refused: no reason")
            return _refuse(400, "say why (reason=...): every playback and download of a recording is logged")
        row = await asyncio.to_thread(catalog.one, self.hotline.calllog, name)
        if row is None:
            self._audit(request, session, f"recording_{how}", name, "refused: no such recording")
            return _refuse(404, f"no recording {name}")
        path = Path(row["path"])
        state = await asyncio.to_thread(verify, path, row["sha256"])
        if state != "ok":
            self._audit(request, session, f"recording_{how}", name, f"refused: {state}")
            return _refuse(409, f"{name}: {state}: not sent")
        who = f"console:{session.name}"
        dest = f"console {how} from {request.remote or '?'}"
        await asyncio.to_thread(catalog.log_export, self.hotline.calllog, name, who, reason, dest, time.time())
        self._audit(request, session, f"recording_{how}", name, "ok", reason=reason)
        disposition = "attachment" if how == "download" else "inline"
        return web.FileResponse(
            path,
            headers={
                "Content-Type": "audio/wav",
                "Content-Disposition": f'{disposition}; filename="{path.name}"',
                "Cache-Control": "no-store",
                "X-Content-SHA256": row["sha256"],  # what the call log kept, for the receiver to check the bytes
            },
        )

    async def _message_handled(self, request: web.Request) -> web.Response:
        session = request[SESSION_KEY]
        name = request.match_info["name"][:80]
        who = f"console:{session.name}"
        if not await asyncio.to_thread(catalog.mark_handled, self.hotline.calllog, name, who, time.time()):
            self._audit(request, session, "message_handled", name, "refused: no such message")
            return _refuse(404, f"no message {name}")
        self._audit(request, session, "message_handled", name, "ok")
        if request.content_type == "application/x-www-form-urlencoded":  # the page's button: back to the list
            raise web.HTTPSeeOther(request.app.router["messages"].url_for())
        return web.json_response({"name": name, "handled_by": who})

    async def _supervise(self, request: web.Request) -> web.Response:
        """Listen in on, whisper to, barge into (or stop) the call at a seat: the supervisor's phone rings."""
        session = request[SESSION_KEY]
        seat, mode = request.match_info["seat"], request.match_info["mode"]
        address = request.remote or ""  # the end is audited after this request is gone
        try:
            body = await self._body(request)
            if self.hotline.supervisors is None:
                raise Refused(503, "listening in needs the controller's ARI connection")
            supervision = self.hotline.supervisors.ask(
                session.name,
                session.account.seat,
                seat,
                mode,
                body.get("call_id", ""),
                on_end=lambda done: self._audit_from(
                    address, session, "supervise_end", done.call_id, done.outcome, **done.detail()
                ),
            )
        except Refused as exc:
            self._audit(request, session, "supervise", seat[:40], f"refused: {exc}", mode=mode[:20])
            return _refuse(exc.status, str(exc))
        except TransferRefused as exc:
            self._audit(request, session, "supervise", seat[:40], f"refused: {exc}", mode=mode[:20])
            return _refuse(exc.status, str(exc))
        record = self.hotline.record(supervision.call_id)
        if record is not None:  # the call's own story says it was listened to, by whom and how
            record.step("supervised", supervisor=session.name, seat=seat, mode=mode, phone_seat=supervision.phone_seat)
        self._audit(
            request, session, "supervise", supervision.call_id, "ok", seat=seat, mode=mode, phone=supervision.phone_seat
        )
        return web.json_response(
            {"supervision": supervision.id, "seat": seat, "call_id": supervision.call_id, "mode": mode}
        )
