"""Reading the call log: calls and their steps, tickets, the callback list (CLI, reports, tests).

Reads are synchronous, each on a connection of its own (never the writer's), so they may run
from any thread while the controller writes; from the event loop call them via
asyncio.to_thread. `where` clauses use `?` placeholders on either backend. A database that
cannot be read raises StorageUnavailable or CallLogError (ivr.errors), never a driver error.
"""

from __future__ import annotations

import json
from typing import Any

from ivr.calllog.backend import Backend


class Queries(Backend):
    """The call log's reads; part of CallLog (ivr.calllog)."""

    def calls(self, where: str = "", params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Calls in arrival order; `where` is an SQL condition with `?` placeholders for `params`."""
        sql = "SELECT * FROM calls" + (f" WHERE {where}" if where else "") + " ORDER BY started_at"
        return self._query(sql, params)

    def first_call_at(self) -> float | None:
        """When the first call in the log arrived (Unix seconds); None for an empty log."""
        rows = self._query("SELECT min(started_at) AS first FROM calls", ())
        return rows[0]["first"] if rows else None

    def steps(self, call_id: str) -> list[dict[str, Any]]:
        rows = self._query("SELECT seq, at, name, detail FROM call_steps WHERE call_id = ? ORDER BY seq", (call_id,))
        return [{**r, "detail": json.loads(r["detail"])} for r in rows]

    def tickets(self, where: str = "", params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Tickets in the order they were opened; `where` as in `calls`."""
        sql = "SELECT * FROM tickets" + (f" WHERE {where}" if where else "") + " ORDER BY created_at, ticket_id"
        return self._query(sql, params)

    def recordings(self, where: str = "", params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Kept recordings and messages (ivr.recording) in the order they were made; `where` as in `calls`."""
        sql = "SELECT * FROM recordings" + (f" WHERE {where}" if where else "") + " ORDER BY started_at, name"
        return self._query(sql, params)

    def last_ticket_id(self, prefix: str) -> str | None:
        """The highest ticket id of the form `prefix` + 6 hex digits (ids of one issuer and day)."""
        rows = self._query("SELECT max(ticket_id) AS last FROM tickets WHERE ticket_id LIKE ?", (prefix + "_" * 6,))
        return rows[0]["last"] if rows else None

    def overdue(self, now: float) -> list[dict[str, Any]]:
        """Open tickets whose deadline (Unix seconds) is before `now`, most overdue first.

        A ticket returned to 12345 is not overdue: its clock stands still until it is dispatched
        again (ivr.ticketing.lifecycle), so no unit is chased for it.
        """
        return self._query(
            "SELECT * FROM tickets WHERE status = 'open' AND state != 'returned' AND deadline_at < ?"
            " ORDER BY deadline_at, ticket_id",
            (now,),
        )

    def callbacks(self, status: str | None = "open") -> list[dict[str, Any]]:
        """The callback list, longest waiting first; status "open", "done" or None for all.

        Rows carry the full `caller_number`: show `caller_masked` unless a person is about to dial.
        """
        where, params = ("WHERE status = ?", (status,)) if status is not None else ("", ())
        return self._query(f"SELECT * FROM callbacks {where} ORDER BY first_missed_at, id", params)

    def callback_calls(self, callback_id: int) -> list[dict[str, Any]]:
        """The missed calls behind one callback entry, oldest first."""
        return self._query(
            "SELECT call_id, reason, at FROM callback_calls WHERE callback_id = ? ORDER BY at, call_id", (callback_id,)
        )

    def report_steps(self, start: float, end: float, names: tuple[str, ...]) -> list[dict[str, Any]]:
        """Steps named `names` of the calls that started in [start, end), by call and order.

        One read for all of a report's steps, not one per call; `detail` stays JSON text.
        """
        marks = ", ".join("?" for _ in names)
        return self._query(
            "SELECT s.call_id, s.seq, s.at, s.name, s.detail FROM call_steps s JOIN calls c ON c.call_id = s.call_id"
            f" WHERE c.started_at >= ? AND c.started_at < ? AND s.name IN ({marks}) ORDER BY s.call_id, s.seq",
            (start, end, *names),
        )

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        with self._session("read") as db:
            return db.rows(sql, params)
