"""The cluster's one operators' line, kept in the shared PostgreSQL call log.

Every node lists the same seats (one routes.yaml, each seat's dial string reachable from every node:
a static line, or a PJSIP trunk to the Asterisk its phone registers with). Two tables:

- `queue_waiting`: a row per caller waiting for a seat on any node (call id, node, joined at wall
  time, front flag, lease).
- `queue_seats`: a row per seat: its operator's state as last set on any node (presence, reason,
  which node, when), idle since, and its holder (the call it rings or talks for, that call's node,
  lease) plus a no-answer penalty.

Every `TICK_S` each node runs ONE transaction under an advisory lock (`SharedLine.sync`): it writes
its line and the presence changes of its operators, renews the leases of what it holds, frees the
seats its calls let go (rang unanswered, released, hung up), then takes the decision for all nodes
(ivr.operators.cluster.plan) and writes the offers as seat holders. It reads back the offers made to
its own callers and the operators' states set on other nodes; `ClusterLink` applies them to the
local SeatPool, which then rings, connects, penalises and wraps up as on a single node. One
serialised decision is simpler than row locks and enough: a dispatch is a few rows per tick.

A node that dies stops renewing its leases (`LEASE_S`): its callers leave the line and the seats
they held are free again at the next dispatch of any node.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from ivr.operators.cluster import SharedSeat, Waiting, plan
from ivr.operators.queue import PoolSnapshot, SeatChange, SeatPool

log = structlog.get_logger("ivr.operators.shared")

LEASE_S = 6.0  # a node's rows outlive it by this long: 12 missed ticks, a busy box's worst stall
TICK_S = 0.5
_LOCK = 0x12345_0E0E  # pg_advisory_xact_lock key of the one line

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS queue_waiting (
        call_id text PRIMARY KEY,
        node text NOT NULL,
        joined_at double precision NOT NULL,
        front boolean NOT NULL DEFAULT false,
        lease_until double precision NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS queue_seats (
        seat text PRIMARY KEY,
        presence text NOT NULL DEFAULT 'ready',
        reason text NOT NULL DEFAULT '',
        presence_node text NOT NULL DEFAULT '',
        idle_since double precision NOT NULL,
        holder text,
        holder_node text,
        lease_until double precision,
        penalty_until double precision
    )""",
)


@dataclass(frozen=True)
class LocalState:
    """What one node's pool shows, read on the event loop for one sync."""

    node: str
    now: float  # wall clock
    line: tuple[tuple[str, float, bool, str | None], ...]  # (call id, joined at, front, seat), first first
    held: dict[str, str]  # seat -> call id of this node's call it rings or talks for
    seats: Mapping[str, tuple[str, float, float | None]]  # seat -> (presence, idle since, penalty until), wall time
    changes: tuple[SeatChange, ...] = ()  # this node's operators' state changes since the last sync
    acked: frozenset[tuple[str, str]] = frozenset()  # (call id, seat) offers the pool took


@dataclass(frozen=True)
class Synced:
    offers: tuple[tuple[str, str], ...] = ()  # (call id, seat) for this node's callers, to apply
    presence: dict[str, tuple[str, str]] = field(default_factory=dict)  # seat -> (state, reason) set elsewhere
    released: frozenset[tuple[str, str]] = frozenset()  # acked offers whose seat this sync let go


class SharedLine:
    """The shared tables on one PostgreSQL connection (used from one thread at a time)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: Any = None  # a psycopg connection (ivr.calllog.postgres.connect)

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            from ivr.calllog.postgres import connect  # the driver only on the cluster profile

            self._conn = connect(self.url)
            with self._conn.transaction():
                self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
                for statement in SCHEMA:
                    self._conn.execute(statement)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def sync(self, local: LocalState) -> Synced:
        try:
            return self._sync(local)
        except Exception:
            self.close()  # opened anew next tick; the leases carry the node meanwhile
            raise

    def _sync(self, local: LocalState) -> Synced:
        conn, me, now = self._connection(), local.node, local.now
        lease = now + LEASE_S
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
            for name, (presence, idle, _) in local.seats.items():
                conn.execute(
                    "INSERT INTO queue_seats (seat, presence, presence_node, idle_since) VALUES (%s, %s, %s, %s)"
                    " ON CONFLICT (seat) DO NOTHING",
                    (name, presence, me, idle),
                )
            for change in local.changes:
                conn.execute(
                    "UPDATE queue_seats SET presence = %s, reason = %s, presence_node = %s,"
                    " idle_since = CASE WHEN %s = 'ready' AND presence <> 'ready' THEN %s ELSE idle_since END"
                    " WHERE seat = %s",
                    (change.state, change.reason, me, change.state, change.at, change.seat),
                )
            in_line = [call_id for call_id, *_ in local.line]
            conn.execute("DELETE FROM queue_waiting WHERE node = %s AND NOT (call_id = ANY(%s))", (me, in_line))
            for call_id, joined, front, _ in local.line:
                conn.execute(
                    "INSERT INTO queue_waiting (call_id, node, joined_at, front, lease_until)"
                    " VALUES (%s, %s, %s, %s, %s)"
                    " ON CONFLICT (call_id) DO UPDATE SET lease_until = excluded.lease_until",
                    (call_id, me, joined, front, lease),
                )
            waiting_here = {call_id: seat for call_id, _, _, seat in local.line}
            offers, released = [], set()
            rows = conn.execute("SELECT seat, holder FROM queue_seats WHERE holder_node = %s", (me,)).fetchall()
            for seat, holder in rows:
                if local.held.get(seat) == holder:
                    conn.execute("UPDATE queue_seats SET lease_until = %s WHERE seat = %s", (lease, seat))
                elif (holder, seat) not in local.acked and holder in waiting_here and waiting_here[holder] is None:
                    offers.append((holder, seat))  # decided by another node's sync: ours to ring
                    conn.execute("UPDATE queue_seats SET lease_until = %s WHERE seat = %s", (lease, seat))
                else:  # rang unanswered, released, or the caller left: free from now
                    _, idle, penalty = local.seats.get(seat, ("", now, None))
                    conn.execute(
                        "UPDATE queue_seats SET holder = NULL, holder_node = NULL, lease_until = NULL,"
                        " idle_since = %s, penalty_until = %s WHERE seat = %s",
                        (idle, penalty, seat),
                    )
                    released.add((holder, seat))
            waiting = [
                Waiting(*row)
                for row in conn.execute("SELECT call_id, node, joined_at, lease_until, front FROM queue_waiting")
            ]
            seats = [
                SharedSeat(*row)
                for row in conn.execute(
                    "SELECT seat, presence, idle_since, holder, holder_node, lease_until, penalty_until"
                    " FROM queue_seats"
                )
            ]
            decided = plan(waiting, seats, now)
            if decided.expired_callers:
                conn.execute("DELETE FROM queue_waiting WHERE call_id = ANY(%s)", (list(decided.expired_callers),))
            for seat, idle in decided.freed_seats:
                conn.execute(
                    "UPDATE queue_seats SET holder = NULL, holder_node = NULL, lease_until = NULL, idle_since = %s"
                    " WHERE seat = %s",
                    (idle, seat),
                )
            nodes = {w.call_id: (w.node, w.lease_until) for w in waiting}
            for call_id, seat in decided.offers:
                node, until = nodes[call_id]
                conn.execute(
                    "UPDATE queue_seats SET holder = %s, holder_node = %s, lease_until = %s, penalty_until = NULL"
                    " WHERE seat = %s",
                    (call_id, node, until, seat),
                )
                if node == me:
                    offers.append((call_id, seat))
            elsewhere = {
                seat: (state, reason)
                for seat, state, reason in conn.execute(
                    "SELECT seat, presence, reason FROM queue_seats WHERE presence_node <> %s", (me,)
                )
            }
        if decided.offers or decided.expired_callers or decided.freed_seats:
            log.info(
                "operator_line_dispatched",
                node=me,
                offers=[list(o) for o in decided.offers],
                expired=list(decided.expired_callers),
                freed=[seat for seat, _ in decided.freed_seats],
            )
        return Synced(tuple(offers), elsewhere, frozenset(released))


class ClusterLink:
    """Keeps one node's SeatPool in the cluster's one line: a task syncing every TICK_S."""

    def __init__(self, pool: SeatPool, line: SharedLine, node: str, wall: Callable[[], float] = time.time) -> None:
        if not pool.shared:
            raise ValueError("the cluster's line needs a pool made with shared=True")
        self.pool, self.line, self.node, self._wall = pool, line, node, wall
        self._changes: list[SeatChange] = []
        self._acked: set[tuple[str, str]] = set()
        self._task: asyncio.Task[None] | None = None
        pool.listeners.append(self._seat_changed)

    def _seat_changed(self, change: SeatChange) -> None:
        if change.by != "cluster" and not change.pending:  # set here, not mirrored from another node
            self._changes.append(change)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="operator-line-sync")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.to_thread(self.line.close)

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception as exc:
                log.warning("operator_line_sync_failed", node=self.node, error=str(exc))
            await asyncio.sleep(TICK_S)

    def local_state(self) -> LocalState:
        snapshot = self.pool.snapshot()
        wall = self._wall()

        def to_wall(mono: float | None) -> float | None:
            return None if mono is None else wall - (snapshot.at - mono)

        seats = {
            v.name: (v.presence, to_wall(v.idle_since) or wall, to_wall(v.penalty_until))
            for v in snapshot.seats
            if not v.retiring
        }
        line = tuple(
            (t.call_id, t.joined_wall, t.front, t.seat.name if t.seat is not None else None) for t in self.pool.line()
        )
        held = _held(snapshot)
        changes, self._changes = tuple(self._changes), []
        return LocalState(self.node, wall, line, held, seats, changes, frozenset(self._acked))

    async def tick(self) -> None:
        local = self.local_state()
        try:
            synced = await asyncio.to_thread(self.line.sync, local)
        except BaseException:
            self._changes[:0] = local.changes  # written next time
            raise
        self._acked -= synced.released
        in_line = {t.call_id for t in self.pool.line()}
        held = {(call_id, seat) for seat, call_id in _held(self.pool.snapshot()).items()}
        self._acked = {o for o in self._acked if o[0] in in_line or o in held}  # the rest are settled
        for call_id, seat in synced.offers:
            if self.pool.offer(call_id, seat):
                self._acked.add((call_id, seat))
        unsent = {change.seat for change in self._changes}  # set here since the sync read: ours is newer
        for view in self.pool.snapshot().seats:
            state = synced.presence.get(view.name)
            if state is None or view.retiring or view.name in unsent:
                continue
            presence, reason = state
            target = view.after_call or view.presence
            if presence not in ("ready", "paused", "signed_out") or target == "wrap_up":
                continue  # after-call work is the node's that had the call
            if presence != target or (presence == "paused" and reason != view.reason):
                self.pool.set_state(view.name, presence, reason, by="cluster")


def _held(snapshot: PoolSnapshot) -> dict[str, str]:
    """Seat -> the call id of this node's call it rings or talks for."""
    return {v.name: v.call_id for v in snapshot.seats if v.call_id is not None}
