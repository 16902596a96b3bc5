"""Staged tables (canary): a new routes.yaml taken by a stable share of callers before it replaces the live one.

`hotline routes stage NEW.yaml --share 10` checks NEW.yaml as `hotline check` does (refused if it fails)
and stores it in the call log's `routes_stage` table; every controller on that call log reads the staged
table each second (with the notices) and routes a caller on it when the caller's bucket is below the
share. The bucket comes from the keyed caller hash (ivr.privacy.caller_hash): the same citizen lands on
the same side on every call — they do not hear one menu in the morning and another after lunch — and
nobody can pick the side by choosing a number, since the key is secret. Each call row carries the
version (digest) it ran on, so the report and the dashboard tell the two tables apart. `promote` writes
the staged text to routes.yaml (the controller reloads it, and the history records it); `drop` ends it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ivr.routing.routes import RouteTable

BUCKETS = 100


def bucket(caller_hash: str) -> int:
    """0..99 from a caller's keyed hash (hex); '' (no hash) is bucket 99, on the live table unless share is 100."""
    try:
        return int(caller_hash[:8], 16) % BUCKETS
    except ValueError:
        return BUCKETS - 1


@dataclass(frozen=True)
class Stage:
    """A staged table and the share of callers (percent, 1..99) routed on it."""

    id: int
    table: RouteTable
    share: int
    by: str = ""

    def takes(self, caller_hash: str) -> bool:
        return bucket(caller_hash) < self.share


def table_for(live: RouteTable, stage: Stage | None, caller_hash: str) -> tuple[RouteTable, str]:
    """The table a caller is routed on, and its role for the metrics ("live" or "staged")."""
    if stage is not None and stage.table.digest != live.digest and stage.takes(caller_hash):
        return stage.table, "staged"
    return live, "live"
