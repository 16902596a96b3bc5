"""The console's audit trail in the call log: every login (and failed one), logout, seat state change,
transfer ask, ticket saved, and every refusal, with who asked, from where, and the result.

Schema version 5 (both backends) adds `console_audit`. Written through the call log's writer
(`ConsoleAction`, journaled like a call), so an audit entry survives a call log that is down.
Caller numbers never reach it: a call is named by its call id.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ivr.calllog import dialects
from ivr.calllog.commands import Db

if TYPE_CHECKING:
    from ivr.calllog import CallLog

_TABLE = """CREATE TABLE IF NOT EXISTS console_audit (
    id {serial},
    at {real} NOT NULL,
    account {text} NOT NULL,
    role {text} NOT NULL DEFAULT '',
    address {text} NOT NULL DEFAULT '',
    action {text} NOT NULL,
    target {text} NOT NULL DEFAULT '',
    result {text} NOT NULL,
    detail {text} NOT NULL DEFAULT '{{}}'
)"""
_INDEX = "CREATE INDEX IF NOT EXISTS console_audit_at ON console_audit (at)"

SQLITE_AUDIT, POSTGRES_AUDIT = dialects.both(_TABLE, _INDEX)


def sqlite_audit_table(db: Db) -> None:
    for statement in SQLITE_AUDIT:
        db.execute(statement)


@dataclass(frozen=True)
class ConsoleAction:
    """One audited console action, as the writer applies and the journal keeps it."""

    at: float
    account: str
    role: str
    address: str
    action: str
    target: str
    result: str  # "ok" or "refused: why" or "failed: why"
    detail: str = "{}"  # JSON
    kind: ClassVar[str] = "console_action"

    def apply(self, db: Db) -> None:
        db.execute(
            "INSERT INTO console_audit (at, account, role, address, action, target, result, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (self.at, self.account, self.role, self.address, self.action, self.target, self.result, self.detail),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ConsoleAction:
        return cls(**data)


def audit_entries(calllog: CallLog, since: float = 0.0) -> list[dict[str, Any]]:
    """Audited console actions from `since` (epoch seconds), oldest first, `detail` decoded."""
    rows = calllog._query("SELECT * FROM console_audit WHERE at >= ? ORDER BY id", (since,))
    return [{**r, "detail": json.loads(r["detail"])} for r in rows]
