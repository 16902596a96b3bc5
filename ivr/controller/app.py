"""The controller's lifecycle, top to bottom: start, serve (reconnecting), drain, stop.

    serve()
      start:    open the call log (marking calls a dead predecessor left as interrupted),
                open the ARI session
      serve:    for each events connection: resync with Asterisk, then dispatch events to
                calls; a dropped connection is retried with backoff (ivr.ari.stream). The
                resync also takes over the calls a dead predecessor left in our app: its
                conversations go on (adopted), its callers in the menu or the queue hear the
                menu again (ivr.call.adopt)
      drain:    on SIGTERM stop taking calls (new ones go to the dialplan fallback), give calls
                in progress `shutdown_grace_seconds`, hand callers still in the menu to the
                fallback, then close the call log after it has flushed

Signals only set flags (SIGTERM/SIGINT: stop; SIGHUP: reload routes.yaml); the work happens here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import signal
import time
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from ivr import privacy, tickets
from ivr.ari import events as ev
from ivr.ari.client import AriClient
from ivr.ari.stream import connections
from ivr.call.adopt import (
    InChain,
    Talking,
    Waiting,
    adopt_call,
    adopt_chain,
    call_of_bridge,
    in_chain,
    outcome_for,
    sort_leftovers,
)
from ivr.call.ari_call import AriCall, quietly, stop_left_prompts
from ivr.call.dispatcher import Dispatcher
from ivr.call.session import Services, handle_call
from ivr.calllog import is_url, open_calllog
from ivr.calllog.evidence import Importer
from ivr.calllog.records import CallRecord
from ivr.calllog.seats import SeatChanged, last_seat_states
from ivr.citizen.progress import CallLogTickets
from ivr.console.accounts import AccountStore
from ivr.console.screen import Hotline
from ivr.console.web import Console
from ivr.controller.admission import AdaptiveLimit, FixedRate, InSetup, Shedding, Signals, p90
from ivr.controller.editing import RouteEditing
from ivr.controller.sdnotify import Notifier
from ivr.errors import AriError, CallLogError, ConfigError, RoutesError
from ivr.handoff.webhook import Payload, WebhookSender
from ivr.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from ivr.metrics import Metrics
from ivr.operators.api import OperatorsApi
from ivr.operators.desk import Desk
from ivr.operators.queue import SeatChange, SeatPool
from ivr.operators.shared import ClusterLink, SharedLine
from ivr.operators.supervise import Supervisors, run_on_ari
from ivr.outbound.runner import Outbound
from ivr.prompts import Prompts, live_dirs
from ivr.recording.store import Recorder, asterisk_root
from ivr.routing import routes
from ivr.routing.dialplan import CHAIN_CONTEXT, CHAINS_LOADED
from ivr.routing.routes import RouteTable
from ivr.routing.staging import table_for
from ivr.settings import Settings, Storage
from ivr.ticketing import outbox
from ivr.ticketing.api import TicketsApi, push_status
from ivr.ticketing.keys import KeyStore, keys_dir
from ivr.ticketing.store import Change, TicketBook
from ivr.timekeeping import local_clock

log = structlog.get_logger("ivr.controller.app")

FALLBACK_CONTEXT = ("hotline-fallback", "operators")  # dialplan/extensions.conf
# The share the dialplan refuses before Stasis (extensions.conf [hotline-entry]) and until when (epoch s).
SHED_PERCENT, SHED_UNTIL = "HOTLINE_SHED_PERCENT", "HOTLINE_SHED_UNTIL"
SHED_HOLD_S = 3  # a published share lasts this long unless renewed: the probe renews it every 0.5 s
REFUSED_CONTEXT = ("hotline-refused", "congestion")  # ditto: Asterisk records the refusal, then 503
RESYNC_CONCURRENCY = 16  # calls repaired at once after a reconnect


async def bounded_gather(coros: list[Coroutine[Any, Any, None]], limit: int) -> None:
    """Run `coros` with at most `limit` at a time; each handles its own errors."""
    gate = asyncio.Semaphore(limit)

    async def one(coro: Coroutine[Any, Any, None]) -> None:
        async with gate:
            await coro

    await asyncio.gather(*(one(c) for c in coros))


def _with_ticket(record: CallRecord, ticket: dict[str, Any] | None) -> None:
    """The route a call's arrival row does not hold yet, from its ticket (written when it was opened)."""
    if ticket is not None and not record.ticket_id:
        record.ticket_id = ticket["ticket_id"]
        record.unit, record.mode, record.route_id = ticket["unit"], ticket["mode"], ticket["route_id"]


def _chunks(items: list[str], size: int = 500) -> list[list[str]]:
    """In pieces a database takes as one query's parameters."""
    return [items[n : n + size] for n in range(0, len(items), size)]


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


class Controller:
    def __init__(self, settings: Settings, table: RouteTable, clock: Callable[[], dt.datetime] | None = None) -> None:
        self.settings = settings
        self.table = table
        self.calllog = open_calllog(settings.calllog_path, journal_path=settings.journal_path)
        if settings.node:  # a cluster node: its Asterisk's systemname is its node id
            self.calllog.channel_prefix = f"{settings.node}-"
        self.webhooks = WebhookSender(on_result=self._webhook_result)
        # A cluster node on a shared PostgreSQL call log: one operators' line across the nodes.
        shared = bool(settings.node) and isinstance(settings.calllog_path, str) and is_url(settings.calllog_path)
        self.seats = SeatPool(table.operators.seats, wrap_up_s=table.operators.wrap_up_seconds, shared=shared)
        self.seats.listeners.append(self._seat_changed)
        self.line = ClusterLink(self.seats, SharedLine(str(settings.calllog_path)), settings.node) if shared else None
        self.desk = Desk()  # the calls at operators and their asks (feature codes, the operators' API)
        self.operators_api = OperatorsApi(self.seats, self.desk, settings.caller_hash_key)
        self.metrics = Metrics(table.entries)
        self.metrics.set_routes(table)
        self.metrics.watch_calllog(self.calllog)
        self._connections = 0
        clock = clock or local_clock(settings.clock_start)
        state = Storage.from_env(settings.environ).state if settings.environ else Path("var")
        self.editing = RouteEditing(self.calllog, self.metrics, settings.routes_path, clock, live_dirs(state))
        self.recorder = Recorder(asterisk_root(settings.environ or {}, state), self.calllog, self.metrics, clock)
        # Who rings a route's chain now: HOTLINE_DIAL_PATH, unless Asterisk has not loaded the chains (_resync).
        self.dial_path = settings.dial_path
        self.services = self._services(table, clock)
        # Tickets move on the controller's clock, as they were opened on it; every move made in this process
        # (the API's, a follow-up's) is pushed to the partners of the ticket's unit (ivr.ticketing.api).
        self.tickets = TicketBook(
            self.calllog,
            table.calendar,
            clock=lambda: tickets.to_epoch(self.services.clock()),
            on_change=self._ticket_changed,
        )
        self.tickets_api = TicketsApi(self.tickets, KeyStore(keys_dir(settings.environ or None)))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._staged: tuple[int, Services] | None = None  # the staged table's services, by stage id
        self.records: dict[str, CallRecord] = {}  # calls in progress, by call id: the console's screen pop
        # A supervisor's listen-in rings their phone from this controller's ARI (made below, used later).
        self.supervisors = Supervisors(
            self.desk,
            self.seats,
            lambda supervision: run_on_ari(self.ari, self.dispatcher, supervision, self.table.hotline_number),
        )
        self.console = Console(
            Hotline(
                self.seats,
                lambda: self.desk,
                self.calllog,
                lambda: self.table,
                self.records.get,
                lambda: self.tickets_api.book,
                lambda: self.services,
                self.supervisors,
            ),
            AccountStore.in_state(state, settings.environ),
        )
        self.dispatcher = Dispatcher(self._start_call, self._hangup_orphan)
        self.ari = AriClient(settings.ari)
        self.metrics.watch_ari_requests(self.ari)
        # Callbacks and 回访 (ivr.outbound), on the tickets' clock too. One controller places them: a
        # cluster's nodes share one list and would call the same citizen twice.
        self.outbound = Outbound(
            ari=self.ari,
            dispatcher=self.dispatcher,
            calllog=self.calllog,
            table=lambda: self.table,
            seats=self.seats,
            clock=lambda: self.services.clock(),
            prompts=self.services.prompts,
            book=self.tickets,  # a 3 reopens the ticket, pushed to its partners like any move
            ready=lambda: self.connected.is_set() and self.accepting and not settings.node,
        )
        self.accepting = True
        self.ari_up = False  # the events WebSocket is open (the resync may still be running)
        self.connected = asyncio.Event()  # open AND resynced: calls are dispatched
        self._stop = asyncio.Event()
        self._sessions: dict[asyncio.Task[None], AriCall] = {}
        self._background: set[asyncio.Task[None]] = set()
        self.admission = FixedRate(settings.max_call_rate if settings.admission == "fixed" else 0)
        adaptive = settings.admission == "adaptive"
        self.adaptive = AdaptiveLimit(ceiling=settings.admission_max_setups) if adaptive else None
        self.in_setup = InSetup()
        self.shedding = Shedding()
        self._reached = self._refused = 0  # calls that reached _start_call since the last probe, refused of them
        self._shed_published: int | None = None  # the percent Asterisk holds; None: not known (publish)
        self.evidence = Importer(settings.asterisk_events)

    def _services(self, table: RouteTable, clock: Callable[[], dt.datetime]) -> Services:
        return Services(
            self.calllog,
            Prompts(self.settings.sounds_prefix),
            clock,
            deadlines=table.deadlines,
            webhooks=self.webhooks,
            partner_secrets=self.settings.partner_secrets(table),
            seats=self.seats,
            metrics=self.metrics,
            node=self.settings.node,
            notices=self.editing.notices_for,
            desk=self.desk,
            tickets=CallLogTickets(self.calllog),
            recorder=self.recorder,
            dial_path=self.dial_path,
        )

    def _seat_changed(self, change: SeatChange) -> None:
        """A seat signed in or out, paused, wrapped up: on record, and in hotline_seats."""
        self.calllog.record(SeatChanged(change.at, change.seat, change.state, change.reason, change.by, change.pending))
        self.metrics.set_seats(seat.status for seat in self.seats.snapshot().seats)

    def _webhook_result(self, target: str, handoff: Payload, result: str, attempts: int) -> None:
        self.metrics.webhook_result(target, result)
        log.info(
            "webhook_result",
            partner=target,
            call_id=handoff.call_id,
            ticket_id=handoff.ticket_id,
            result=result,
            attempts=attempts,
        )

    def _ticket_changed(self, change: Change) -> None:
        # Called after the commit, from whichever thread moved the ticket: the sender lives on the loop.
        if self._loop is not None:
            self._loop.call_soon_threadsafe(push_status, self.webhooks, self.tickets_api.keys, change)

    # -- lifecycle --------------------------------------------------------------------------
    async def serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        metrics_site = await self._serve_metrics()  # first: a busy port must fail before anything runs
        interrupted = self.calllog.start()
        self.editing.went_live(self.table, "start")
        self._resume_ticket_numbers()
        self._restore_seat_states()
        if self.line is not None:
            self.line.start()
        self.webhooks.start()
        if self.settings.clock_start is not None:
            log.warning("clock_simulated", starts_at=self.settings.clock_start.isoformat())
        log.info(
            "controller_starting",
            routes=str(self.settings.routes_path),
            routes_version=self.table.digest,
            interrupted_calls=interrupted,
        )
        self._log_calendar(self.table)
        consumer = asyncio.create_task(self._consume(), name="ari-events")
        watcher = asyncio.create_task(self._watch_routes(), name="routes-watcher")
        gauges = asyncio.create_task(self._refresh_gauges(), name="metrics-gauges")
        probe = asyncio.create_task(self._probe_load(), name="admission-probe")
        imports = asyncio.create_task(self._import_asterisk_calls(), name="asterisk-calls")
        editing = asyncio.create_task(self.editing.watch(lambda: self.table), name="notices-and-stage")
        stopper = asyncio.create_task(self._stop.wait(), name="stop-flag")
        outbound = asyncio.create_task(self.outbound.run(), name="outbound-calls")
        pushes = asyncio.create_task(self._push_outbox(), name="ticket-outbox")
        leftovers = asyncio.create_task(  # recordings a killed controller left unfinished (ivr.recording.store)
            self.recorder.finish_leftovers(self.table.recording.directory, self._asterisk_started),
            name="recording-leftovers",
        )
        systemd = Notifier()  # READY=1, then the watchdog's keep-alives from this loop (deploy/systemd)
        keepalive = asyncio.create_task(systemd.run(), name="systemd-notify")
        try:
            done, _ = await asyncio.wait({consumer, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if consumer in done:
                consumer.result()  # a fatal error (bad credentials, app replaced) propagates
            systemd.notify("STOPPING=1")
            await self._drain()
        finally:
            tasks = (
                stopper,
                consumer,
                watcher,
                gauges,
                probe,
                imports,
                editing,
                keepalive,
                outbound,
                pushes,
                leftovers,
            )
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.line is not None:
                await self.line.stop()  # its rows' leases run out: the other nodes free them
            systemd.close()
            await self.supervisors.close()  # their phones and snoop channels hung up while ARI is still there
            await metrics_site.cleanup()
            await self.ari.close()
            await self.webhooks.close(timeout=5.0)
            await self.recorder.drain()  # files of calls that just ended: their rows, before the log closes
            self.calllog.close()
            log.info("controller_stopped")

    async def _asterisk_started(self) -> float | None:
        """When the running Asterisk started (epoch), None if it cannot be asked now."""
        await self.connected.wait()
        try:
            status = (await self.ari.asterisk_info()).get("status", {})
            return dt.datetime.strptime(status["startup_time"], "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
        except (AriError, KeyError, TypeError, ValueError) as exc:
            log.warning("asterisk_start_unknown", error=str(exc))
            return None

    def request_stop(self) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.request_stop)
        loop.add_signal_handler(signal.SIGINT, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.reload)

    def reload(self, how: str = "sighup") -> bool:
        """Swap in a re-read routes.yaml; a bad file is refused and the running table stays.

        Calls in progress keep the table they started with (each session holds its own
        reference), so a reload never changes a call mid-menu.
        """
        try:
            table = routes.load(self.settings.routes_path)
        except RoutesError as exc:
            log.error(
                "routes_reload_refused", problems=[str(p) for p in exc.problems], running_version=self.table.digest
            )
            self.metrics.routes_reloaded(ok=False)
            return False
        if table.digest == self.table.digest:
            return True
        log.info("routes_reloaded", old_version=self.table.digest, new_version=table.digest)
        self.table = table
        self.seats.set_seats(table.operators.seats)  # removed seats finish their call first
        self.seats.wrap_up_s = table.operators.wrap_up_seconds
        self.metrics.routes_reloaded(ok=True)
        self.metrics.set_routes(table)
        self.services = self._services(table, self.services.clock)
        self.tickets.calendar = table.calendar
        self.editing.went_live(table, how)
        self._log_calendar(table)
        return True

    def _log_calendar(self, table: RouteTable) -> None:
        """Say which calendar answers, and warn while the coming weeks are provisional or uncovered."""
        check = table.calendar.check(self.services.clock().date())
        log.info("holiday_calendar", calendar=check.summary)
        for note in check.provisional:
            log.warning("holiday_calendar_provisional", note=note)
        if check.failure:
            log.error("holiday_calendar_running_out", problem=check.failure)

    async def _watch_routes(self, interval: float = 2.0) -> None:
        """Reload routes.yaml when the file changes (as SIGHUP does); a bad edit is refused once."""
        path = self.settings.routes_path
        seen = _stat(path)
        while True:
            await asyncio.sleep(interval)
            now = _stat(path)
            if now != seen:
                seen = now
                self.reload("file")

    def health(self) -> tuple[int, dict[str, Any]]:
        """Ready for calls (200) only when ARI is connected, the resync done and the call log writable.

        Otherwise 503 with the reasons: what starts the controller (lab/) waits on this, a load
        balancer routes around it. A call log that journals loses nothing, but the node is not whole.
        """
        checks = {
            "ari_connected": self.ari_up,
            "resynced": self.connected.is_set(),
            "calllog_writable": not self.calllog.journaling,
            "accepting_calls": self.accepting,
        }
        why = {
            "ari_connected": "the ARI events connection is down",
            "resynced": "the resync with Asterisk is not done",
            "calllog_writable": "the call log is not writable (writes wait in the journal)",
            "accepting_calls": "draining for shutdown",
        }
        reasons = [why[name] for name, ok in checks.items() if not ok]
        body = {"status": "unavailable" if reasons else "ok", **checks, "reasons": reasons, "pid": os.getpid()}
        return (503 if reasons else 200), body

    async def _serve_metrics(self) -> web.AppRunner:
        """/metrics for Prometheus and /health for readiness, on loopback unless HOTLINE_METRICS_ADDR says otherwise."""

        async def handle(_: web.Request) -> web.Response:
            return web.Response(body=self.metrics.exposition(), headers={"Content-Type": METRICS_CONTENT_TYPE})

        async def health(_: web.Request) -> web.Response:
            status, body = self.health()
            return web.json_response(body, status=status)

        app = web.Application()
        app.router.add_get("/metrics", handle)
        app.router.add_get("/health", health)
        app.router.add_routes(self.tickets_api.routes())
        app.add_subapp("/console/", self.console.app())  # the operators' console (ivr.console.web)
        app.router.add_routes(self.operators_api.routes())
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        host, port = self.settings.metrics_addr
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(
                f"HOTLINE_METRICS_ADDR {host}:{port}: cannot listen: {exc.strerror} (another controller running?)"
            ) from None
        log.info(
            "metrics_listening",
            address=f"{host}:{port}",
            tickets_api=f"http://{host}:{port}/api/v1/tickets",
            console=f"http://{host}:{port}/console/",
        )
        return runner

    async def _probe_load(self, interval: float = 0.5) -> None:
        """What the box shows, every `interval`: the loop's lag, ARI's p90, the calls in setup; it moves the
        adaptive admission limit (ivr.controller.admission) and the gauges."""
        latencies = self.ari.latencies
        while True:
            before = time.monotonic()
            await asyncio.sleep(interval)
            lag = max(0.0, time.monotonic() - before - interval)
            samples = list(latencies)
            latencies.clear()
            signals = Signals(len(self.in_setup), p90(samples), lag)
            limit = 0.0
            if self.adaptive is not None:
                was = self.adaptive.logged
                if self.adaptive.update(signals):
                    log.info(
                        "admission_limit_moved",
                        limit_from=round(was, 1),
                        limit_to=round(self.adaptive.limit, 1),
                        in_setup=signals.in_setup,
                        ari_p90_ms=None if signals.ari_p90_s is None else round(signals.ari_p90_s * 1000, 1),
                        loop_lag_ms=round(lag * 1000, 1),
                    )
                limit = self.adaptive.limit
            self.shedding.update(self._reached, self._refused)
            self._reached = self._refused = 0
            self.metrics.admission_seen(limit, signals.in_setup, signals.ari_p90_s, lag, self.shedding.share)
            await self._publish_shedding()

    async def _publish_shedding(self) -> None:
        """Tell the dialplan which share of new calls to refuse before Stasis: renewed while it is not 0,
        set to 0 once when it falls there (and at the first probe: a previous controller's share)."""
        percent = self.shedding.percent
        if percent == 0 and self._shed_published == 0:
            return
        try:
            if percent > 0:
                await self.ari.set_global(SHED_UNTIL, str(int(time.time()) + SHED_HOLD_S))
            await self.ari.set_global(SHED_PERCENT, str(percent))
        except AriError as exc:  # Asterisk away: the share expires there by itself
            log.warning("shedding_publish_failed", percent=percent, error=str(exc))
            self._shed_published = None
            return
        # Said at the first publication and when shedding starts or stops, not at every change of share.
        if self._shed_published is None or (percent > 0) != (self._shed_published > 0):
            log.info("shedding_in_dialplan", percent=percent)
        self._shed_published = percent

    async def _refresh_gauges(self, interval: float = 15.0) -> None:
        """Gauges read from state: overdue tickets and open callbacks (from the call log, off the loop), the queue."""
        while True:
            snapshot = self.seats.snapshot()
            self.metrics.queue_changed(snapshot.waiting)
            self.metrics.set_seats(seat.status for seat in snapshot.seats)
            try:
                overdue = await asyncio.to_thread(self.calllog.overdue, time.time())
            except Exception as exc:  # a locked or unreadable log must not stop the controller
                log.warning("overdue_refresh_failed", error=str(exc))
            else:
                counts: dict[str, int] = {}
                for ticket in overdue:
                    counts[ticket["unit"]] = counts.get(ticket["unit"], 0) + 1
                self.metrics.set_overdue(counts)
            try:
                open_callbacks = await asyncio.to_thread(self.calllog.callbacks, "open")
            except Exception as exc:  # as above: a gauge is not worth stopping calls for
                log.warning("callbacks_refresh_failed", error=str(exc))
            else:
                self.metrics.set_callbacks_oldest([c["first_missed_at"] for c in open_callbacks], time.time())
            await asyncio.sleep(interval)

    async def _push_outbox(self, interval: float = 2.0) -> None:
        """Ticket moves made by `hotline tickets …` (another process), pushed to partners like this one's own."""
        while True:
            try:
                await self.push_outbox()
            except Exception as exc:  # a locked or unreachable log: the moves stay in the outbox for the next round
                log.warning("ticket_outbox_failed", error=str(exc))
            await asyncio.sleep(interval)

    async def push_outbox(self) -> int:
        """Claim the pending pushes of the call log's ticket outbox and queue each; how many were queued."""
        queued = 0
        for change in await asyncio.to_thread(outbox.claim, self.calllog):
            queued += push_status(self.webhooks, self.tickets_api.keys, change)
        return queued

    async def _import_asterisk_calls(self, interval: float = 5.0) -> None:
        """Refused and fallback calls, from Asterisk's own record, into the call log and /metrics.

        At start this brings in the calls the fallback took while the controller was down.
        """
        failing = ""  # said once, not every 5 s, until it changes or recovers
        while True:
            try:
                added = await asyncio.to_thread(self.evidence.run, self.calllog)
            except Exception as exc:  # an unreadable file or call log: try again next time, lose nothing
                if str(exc) != failing:
                    log.warning("asterisk_calls_import_failed", source=str(self.evidence.path), error=str(exc))
                failing = str(exc)
            else:
                if failing:
                    log.info("asterisk_calls_import_recovered", source=str(self.evidence.path))
                failing = ""
                for record in added:
                    self.metrics.call_counted(record.entry, record.outcome)
                    self.metrics.person_answer_counted("", False, False, False)  # offered, no person answered
            await asyncio.sleep(interval)

    # -- events -----------------------------------------------------------------------------
    def _resume_ticket_numbers(self) -> None:
        today = self.services.clock().date()
        try:
            last = self.calllog.last_ticket_id(tickets.ticket_prefix(today, self.settings.node))
        except CallLogError as exc:
            # The call log is down (its writes go to the journal): numbering goes by the clock alone.
            log.warning("ticket_numbers_not_resumed", error=str(exc))
            return
        tickets.resume_numbering(today, last, self.settings.node)
        log.info("ticket_numbers_resumed", day=today.isoformat(), after=last)

    def _restore_seat_states(self) -> None:
        """A seat paused or signed out before a restart stays so: its operator said so, not this process."""
        try:
            last = last_seat_states(self.calllog)
        except CallLogError as exc:  # the call log is down: every seat starts ready, as before seat states
            log.warning("seat_states_not_restored", error=str(exc))
            return
        restored = self.seats.restore(last)
        log.info("seat_states_restored", seats={c.seat: c.state for c in restored})

    async def _consume(self) -> None:
        async for conn in connections(self.ari):
            self.ari_up = True
            await self._resync()
            self.connected.set()
            self.metrics.ari_connected(first=self._connections == 0)
            self._connections += 1
            try:
                async for event in conn:
                    self.dispatcher.dispatch(event)
            finally:
                self.ari_up = False
                self.connected.clear()
                self.metrics.ari_disconnected()

    async def _resync(self) -> None:
        """After (re)connecting: events during the gap are lost, so ask Asterisk what is true."""
        try:
            app = await self.ari.application()
        except AriError as exc:
            log.warning("resync_failed", error=str(exc))
            return
        await self._check_chains()
        self._shed_published = None  # a share a previous controller left in Asterisk: reset before the first probe
        await self._publish_shedding()
        owned = set(app.get("channel_ids", []))
        repairs: list[Coroutine[Any, Any, None]] = []
        for call in self.dispatcher.calls():
            if call.channel not in owned and call.caller_up:
                # The caller left while we were disconnected: unwind that call now.
                call.queue.put_nowait(ev.StasisEnd("StasisEnd", {"channel": {"id": call.channel}}, call.channel))
            elif call.caller_up:
                repairs.append(call.reconcile())
        left = {channel for channel in owned if not self.dispatcher.known(channel)}
        if left:  # left in our app by a previous controller process (killed, crashed)
            repairs.extend(await self._take_over(left))
        # Concurrently (each is a few REST requests): after an outage with hundreds of calls up,
        # one after another would keep the last caller waiting for seconds. Bounded, so the
        # burst does not crowd out the new calls' requests.
        await bounded_gather(repairs, limit=RESYNC_CONCURRENCY)
        log.info("resynced", owned_channels=len(owned), active_calls=len(self._sessions))

    async def _check_chains(self) -> None:
        """HOTLINE_DIAL_PATH=dialplan needs the ring chains in Asterisk's dialplan: a caller sent into a
        context Asterisk lacks would be hung up. The chains' file sets the global HOTLINE_CHAINS (ivr.routing.dialplan);
        without it this controller rings over ARI until a reconnect finds the chains loaded."""
        if self.settings.dial_path != "dialplan":
            return
        try:
            loaded = bool(await self.ari.get_global(CHAINS_LOADED))
        except AriError as exc:
            log.warning("ring_chains_check_failed", error=str(exc))
            return  # as it was
        path = "dialplan" if loaded else "ari"
        if not loaded:
            log.warning(
                "ring_chains_not_loaded", using="ari", fix="hotline site render / hotline install, then dialplan reload"
            )
        if path == self.dial_path:
            return
        self.dial_path = path
        self.services = dataclasses.replace(self.services, dial_path=path)
        self._staged = None  # a staged table's services are made again, with the same path

    async def _take_over(self, left: set[str]) -> list[Coroutine[Any, Any, None]]:
        """What to do with the channels a previous controller process left in our app.

        Its conversations are adopted (the bridge is left alone; this process watches for the
        hang-up and completes the row); its callers not yet talking to anyone start again at the
        menu; legs and bridges nobody needs any more go; what we cannot place (no row, no
        bridge) goes to the dialplan's safe fallback, apology + duty line, as before.

        A caller it had sent down a ring chain (HOTLINE_DIAL_PATH=dialplan) is among them too: out
        of Stasis, but still in the app, whose subscription to its channel outlived the controller.
        Asterisk rings on or carries the conversation without us; `adopt_chain` follows it to the end
        of the call. Taken for a caller in the menu, it would be answered again, and cut.
        """
        try:
            listed = [c for c in await self.ari.list_channels() if c.get("id") in left]
            bridges = await self.ari.list_bridges()
        except AriError as exc:
            log.warning("leftovers_unlisted", error=str(exc))
            listed, bridges = [{"id": c} for c in left], []
        ours = {call.id for call in self.dispatcher.calls()}
        bridges = [b for b in bridges if call_of_bridge(str(b.get("id", ""))) not in ours]
        rows, tickets = await asyncio.to_thread(self._rows_of, [str(c["id"]) for c in listed])
        calls_by_channel = {ch: row["call_id"] for ch, row in rows.items()}
        in_stasis = [c for c in listed if (c.get("dialplan") or {}).get("context") != CHAIN_CONTEXT]
        found = sort_leftovers(in_stasis, bridges, calls_by_channel, now=time.time())
        chained = in_chain(listed, bridges, calls_by_channel, now=time.time())
        log.info(
            "leftovers_found",
            talking=len(found.talking),
            waiting=len(found.waiting),
            stray_legs=len(found.stray_legs),
            stray_bridges=len(found.stray_bridges),
            unknown=len(found.unknown),
        )
        if len(in_stasis) < len(listed):
            log.info(
                "chains_found",
                talking=sum(c.since is not None for c in chained),
                ringing=sum(c.since is None for c in chained),
                without_row=len(listed) - len(in_stasis) - len(chained),
            )
        numbers = {str(c["id"]): str((c.get("caller") or {}).get("number", "")) for c in listed}
        work: list[Coroutine[Any, Any, None]] = []
        for talking in found.talking:
            row = rows.get(talking.citizen)
            work.append(self._adopt(talking, row, tickets.get(talking.call_id), numbers.get(talking.citizen, "")))
        work.extend(self._menu_again(waiting, rows.get(waiting.citizen)) for waiting in found.waiting)
        work.extend(self._follow_chain(c, rows[c.citizen], tickets.get(c.call_id)) for c in chained)
        work.extend(self._quiet_hangup(leg) for leg in found.stray_legs)
        work.extend(quietly(self.ari.destroy_bridge(bridge)) for bridge in found.stray_bridges)
        for channel in found.unknown:
            log.warning("resync_release_stale_channel", channel=channel)
            work.append(self._release(channel))
        return work

    async def _follow_chain(self, found: InChain, row: dict[str, Any], ticket: dict[str, Any] | None) -> None:
        """Follow a caller a dead controller had sent down a ring chain: one `adopt_chain` coroutine for it.

        One without a row (the arrival's write lost) is not among them: the dialplan hangs it up
        after the chain, as when no controller runs.
        """
        record = CallRecord.from_row(row)
        _with_ticket(record, ticket)  # the route and ticket, for what follows the talk
        table, services, role = self._table_for(record)
        call = self._ari_call(found.citizen, record, found.caller_number)
        self._launch(call, record, adopt_chain(call, found, record, table, services), role)

    def _rows_of(self, channels: list[str]) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """The call log's rows of these citizen channels, and their calls' tickets (by call id)."""
        rows: dict[str, dict[str, Any]] = {}
        tickets: dict[str, dict[str, Any]] = {}
        try:
            for chunk in _chunks(channels):
                found = self.calllog.calls(f"channel_id IN ({', '.join('?' * len(chunk))})", tuple(chunk))
                rows.update((row["channel_id"], row) for row in found)
            for chunk in _chunks([row["call_id"] for row in rows.values()]):
                opened = self.calllog.tickets(f"call_id IN ({', '.join('?' * len(chunk))})", tuple(chunk))
                tickets.update((ticket["call_id"], ticket) for ticket in opened)
        except Exception as exc:  # a call log down: conversations are still found by their bridges
            log.warning("leftovers_rows_unread", error=str(exc))
        return rows, tickets

    async def _adopt(
        self, found: Talking, row: dict[str, Any] | None, ticket: dict[str, Any] | None, caller_number: str
    ) -> None:
        """Carry on a conversation a dead controller bridged: one `adopt_call` coroutine for it."""
        targets = []
        for leg in found.legs:
            try:
                targets.append(await self.ari.get_variable(leg, "HOTLINE_TARGET"))
            except AriError:
                targets.append("")  # gone meanwhile: adopt_call sees it go
        if row is not None:
            record = CallRecord.from_row(row)
        else:  # the arrival's write never reached the log (a kill within milliseconds)
            record = self._new_record(found.citizen, found.call_id, self.table.hotline_number, caller_number)
        _with_ticket(record, ticket)
        call = self._ari_call(found.citizen, record, caller_number)
        outcome = outcome_for(found.bridge, targets)
        seats = {seat.name for seat in self.table.operators.seats}
        seat = next((target for target in targets if target in seats), "")
        self._launch(call, record, adopt_call(call, found, record, outcome, self.services, seat), "live")

    async def _menu_again(self, found: Waiting, row: dict[str, Any] | None) -> None:
        """A caller the dead controller had not put through to anyone starts over at the menu.

        Not the duty line, as before: the menu is where they were or had passed (a caller in the
        queue had waited for the same operators the menu leads to), so it costs them seconds, and
        the duty line — one number for every such caller at once, after a crash with hundreds up —
        would be the one place that cannot take them. Their place in the queue died with the
        controller's memory; their row goes on, with a `resumed` step.
        """
        for leg in found.legs:  # a department or seat still ringing for them
            await self._quiet_hangup(leg)
        # A prompt (or hold tone) started by the dead controller would play on before ours.
        first_playback = await stop_left_prompts(self.ari, found.citizen)
        if found.call_id:  # a message being recorded: keep what was said
            await quietly(self.ari.request("POST", f"/recordings/live/hotline-msg-{found.call_id}/stop"))
        if row is not None:
            record = CallRecord.from_row(row)
            record.routes_version = self.table.digest
        else:
            record = self._new_record(found.citizen, "", await self._entry_of(found), found.caller_number)
        record.resumed(after="controller_restart")
        table, services, role = self._table_for(record)
        # Its ids go on from the dead controller's: a leg, bridge or playback of the same id would
        # take the old one's events for its own.
        call = self._ari_call(
            found.citizen, record, found.caller_number, first_seq=found.seq, first_playback=first_playback
        )
        self._launch(call, record, handle_call(call, record, table, services), role)

    async def _entry_of(self, found: Waiting) -> str:
        """The number a caller without a row dialled: in Stasis its dialplan position is the entry
        context's `s`, the number is in HOTLINE_ENTRY (extensions.conf)."""
        if found.entry.isdigit():
            return found.entry
        try:
            entry = await self.ari.get_variable(found.citizen, "HOTLINE_ENTRY")
        except AriError:
            entry = ""
        return entry if entry.isdigit() else self.table.hotline_number

    def _new_record(self, channel: str, call_id: str, entry: str, caller_number: str) -> CallRecord:
        return CallRecord(
            call_id=call_id or uuid.uuid4().hex[:16],
            channel_id=channel,
            entry=entry,
            caller_masked=privacy.mask(caller_number),
            caller_hash=privacy.caller_hash(caller_number, self.settings.caller_hash_key),
            routes_version=self.table.digest,
        )

    def _start_call(self, start: ev.StasisStart) -> None:
        if not self.accepting:
            self._spawn(self._release(start.channel))
            return
        self._reached += 1
        if not self.admission.admit() or (self.adaptive is not None and not self.adaptive.admit(len(self.in_setup))):
            # Beyond what this box can carry: refuse at once — unanswered, so the carrier gets
            # 503 and can retry elsewhere — rather than slow every call.
            self._refused += 1
            self.admission.refused += 1
            self.metrics.call_refused()
            self._spawn(self._refuse(start.channel))
            return
        entry = start.args[0] if start.args else start.dialed
        record = self._new_record(start.channel, "", entry, start.caller_number)
        table, services, role = self._table_for(record)
        call = self._ari_call(start.channel, record, start.caller_number)
        self.in_setup.begin(record.call_id)
        call.on_first_sound = lambda: self.in_setup.end(record.call_id)
        self._launch(call, record, handle_call(call, record, table, services), role)

    def _table_for(self, record: CallRecord) -> tuple[RouteTable, Services, str]:
        """The table a call runs on, its services and role: a staged table (canary) takes a stable
        share of callers, by their keyed hash."""
        table, role = table_for(self.table, self.editing.stage, record.caller_hash)
        if role != "staged":
            return table, self.services, role
        record.routes_version = table.digest
        return table, self._stage_services(table), role

    def _ari_call(
        self, channel: str, record: CallRecord, caller_number: str, first_seq: int = 0, first_playback: int = 0
    ) -> AriCall:
        return AriCall(
            self.ari,
            record.call_id,
            channel,
            caller_number=caller_number,
            register=self.dispatcher.register,
            unregister=self.dispatcher.unregister,
            first_seq=first_seq,
            first_playback=first_playback,
        )

    def _launch(self, call: AriCall, record: CallRecord, story: Coroutine[Any, Any, None], role: str) -> None:
        task = asyncio.create_task(self._run_call(record, story, role), name=f"call-{record.call_id}")
        self._sessions[task] = call
        task.add_done_callback(self._sessions.pop)

    def _stage_services(self, table: RouteTable) -> Services:
        stage = self.editing.stage
        assert stage is not None
        if self._staged is None or self._staged[0] != stage.id:
            self._staged = (stage.id, self._services(table, self.services.clock))
        return self._staged[1]

    async def _run_call(self, record: CallRecord, story: Coroutine[Any, Any, None], role: str = "live") -> None:
        structlog.contextvars.bind_contextvars(
            call_id=record.call_id, entry=record.entry, channel=record.channel_id, caller=record.caller_masked
        )
        self.records[record.call_id] = record
        try:
            await story
        except Exception:
            log.exception("call_crashed")
        finally:
            self.in_setup.end(record.call_id)
            self.records.pop(record.call_id, None)
            self.metrics.call_on_routes(role, record.outcome)

    def _hangup_orphan(self, start: ev.StasisStart) -> None:
        self._spawn(self._quiet_hangup(start.channel))

    async def _quiet_hangup(self, channel: str, reason: str = "normal") -> None:
        await quietly(self.ari.hangup(channel, reason))

    async def _refuse(self, channel: str) -> None:
        """Send a refused call to the dialplan, which writes Asterisk's own record of it and answers 503."""
        try:
            await self.ari.continue_in_dialplan(channel, *REFUSED_CONTEXT)
        except AriError:
            await self._quiet_hangup(channel, reason="congestion")  # refused all the same, if uncounted

    async def _release(self, channel: str) -> None:
        try:
            # A prompt started by a previous controller would hold the channel until it ends.
            await stop_left_prompts(self.ari, channel)
            await self.ari.continue_in_dialplan(channel, *FALLBACK_CONTEXT)
        except AriError as exc:
            log.warning("release_failed", channel=channel, error=str(exc))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- shutdown ---------------------------------------------------------------------------
    async def _drain(self) -> None:
        self.accepting = False
        if self._shed_published:  # the next controller must not find new calls refused for this one's load
            self.shedding.share = 0.0
            await self._publish_shedding()
        pending = set(self._sessions)
        log.info(
            "draining",
            calls=len(pending),
            grace_seconds=self.settings.shutdown_grace_seconds,
            refused_over_rate=self.admission.refused,
        )
        if pending:
            # Callers still in the menu or ringing are handed to the dialplan fallback right
            # away (the operators answer them); connected calls get the grace period to finish.
            for task, call in list(self._sessions.items()):
                if call.bridged_since is None:
                    # Stop the call's coroutine first, so no request of its own is still
                    # changing the channel while we hand it over.
                    call.keep_for_handoff()
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    await call.release_to(*FALLBACK_CONTEXT)
            _, still = await asyncio.wait(pending, timeout=self.settings.shutdown_grace_seconds)
            for task in still:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
