"""Retention (PIPL): erasing full caller numbers once they are not needed, deleting old records.

`purge` is what `hotline purge` runs (daily, from cron or a timer): synchronous, on a connection
of its own, one transaction, safe while a controller writes. Failures are StorageUnavailable or
CallLogError (ivr.errors), never a driver error.
"""

from __future__ import annotations

import os

import structlog

from ivr.calllog.backend import Backend

log = structlog.get_logger("ivr.calllog")

KEEP_CALLS_DAYS = 1095
"""Calls and closed tickets are kept three years: the assessment (通报考核) looks back that far."""
KEEP_NUMBERS_DAYS = 30
"""A full caller number is kept at most this long after the caller's last missed call (PIPL)."""


class Retention(Backend):
    """The call log's retention rules; part of CallLog (ivr.calllog)."""

    def purge(
        self,
        now: float,
        keep_calls_days: int = KEEP_CALLS_DAYS,
        keep_numbers_days: int = KEEP_NUMBERS_DAYS,
        dry_run: bool = False,
        keep_recordings_days: int | None = None,
        keep_messages_days: int | None = None,
    ) -> dict[str, int]:
        """Apply the retention rules in one transaction; how many of each were (or would be) affected.

        - A full caller number is erased (`caller_number` = '') once its callback entry is done,
          and on any entry whose caller last missed a call more than `keep_numbers_days` ago
          (the number was last given to us then); the masked form and the keyed hash stay, so
          the entry still counts in reports. A new missed call from the caller restores it.
        - Calls that started more than `keep_calls_days` ago are deleted with their steps and
          callback links, as are closed tickets created before then (with their lifecycle events)
          and done callback entries with no call left. Open tickets and open callback entries are
          never deleted. The tickets API's idempotency answers go after a day (its nonces after
          ten minutes, as it writes new ones: ivr.ticketing.api).
        - Calls the hotline placed: a number kept for a ticket's 回访 is erased after `keep_numbers_days`
          (at once when its follow-up ends); callback attempts and follow-ups go with their entry or ticket.

        - Recordings (kind `call`) made more than `keep_recordings_days` ago and messages more
          than `keep_messages_days` ago (routes.yaml `recording:`; None keeps them) lose their rows
          and then, once that is committed, their files (ivr.recording); a recording of a call
          deleted above goes with it.

        Synchronous and safe while a controller writes (it waits for the write lock). What
        happens to the erased bytes afterwards is the backend's (`_after_purge`). `dry_run`
        runs the same statements and rolls them back.
        """
        if min(keep_calls_days, keep_numbers_days, keep_recordings_days or 0, keep_messages_days or 0) < 0:
            raise ValueError("retention periods are whole days, 0 or more")
        numbers_before = now - keep_numbers_days * 86400.0
        calls_before = now - keep_calls_days * 86400.0
        old_calls = "SELECT call_id FROM calls WHERE started_at < :calls"
        expired = (
            "(kind = 'call' AND started_at < :recordings) OR (kind = 'message' AND started_at < :messages)"
            f" OR call_id IN ({old_calls})"
        )
        statements = (
            ("recordings_deleted", f"DELETE FROM recordings WHERE {expired}"),
            (
                "numbers_erased",
                (
                    "UPDATE callbacks SET caller_number = '' WHERE caller_number != ''"
                    " AND (status = 'done' OR last_missed_at < :numbers)"
                ),
            ),
            ("steps_deleted", f"DELETE FROM call_steps WHERE call_id IN ({old_calls})"),
            ("callback_calls_deleted", f"DELETE FROM callback_calls WHERE call_id IN ({old_calls})"),
            ("calls_deleted", "DELETE FROM calls WHERE started_at < :calls"),
            (
                "ticket_events_deleted",
                "DELETE FROM ticket_events WHERE ticket_id IN"
                " (SELECT ticket_id FROM tickets WHERE status = 'closed' AND created_at < :calls)",
            ),
            ("tickets_deleted", "DELETE FROM tickets WHERE status = 'closed' AND created_at < :calls"),
            # The tickets API's replay and retry memory (ivr.ticketing.api): a day is far past any window.
            ("api_requests_deleted", "DELETE FROM api_idempotency WHERE at < :day"),
            (
                "callbacks_deleted",
                (
                    "DELETE FROM callbacks WHERE status = 'done' AND last_missed_at < :calls"
                    " AND id NOT IN (SELECT callback_id FROM callback_calls)"
                ),
            ),
            # Calls the hotline placed (ivr.outbound.store): a 回访's number goes with the numbers, the
            # attempts and follow-ups with their callback entry or ticket.
            ("followup_numbers_erased", "DELETE FROM ticket_contacts WHERE at < :numbers"),
            (
                "callback_attempts_deleted",
                "DELETE FROM callback_attempts WHERE callback_id NOT IN (SELECT id FROM callbacks)",
            ),
            (
                "followup_attempts_deleted",
                "DELETE FROM followup_attempts WHERE ticket_id NOT IN (SELECT ticket_id FROM tickets)",
            ),
            ("followups_deleted", "DELETE FROM followups WHERE ticket_id NOT IN (SELECT ticket_id FROM tickets)"),
        )
        never = float("-inf")
        params = {
            "numbers": numbers_before,
            "calls": calls_before,
            "day": now - 86400.0,
            "recordings": never if keep_recordings_days is None else now - keep_recordings_days * 86400.0,
            "messages": never if keep_messages_days is None else now - keep_messages_days * 86400.0,
        }
        counts: dict[str, int] = {}
        files: list[str] = []
        with self._session("purge") as db:
            self._begin_exclusive(db)
            try:
                files = [r["path"] for r in db.rows(f"SELECT path FROM recordings WHERE {expired}", params)]
                for name, sql in statements:
                    counts[name] = db.execute(sql, params).rowcount
            except BaseException:
                db.rollback()
                raise
            if dry_run:
                db.rollback()
            else:
                db.commit()
                self._after_purge(db)
        counts["recording_files_deleted"] = 0 if dry_run else _unlink(files)
        log.info(
            "calllog_purged",
            dry_run=dry_run,
            keep_calls_days=keep_calls_days,
            keep_numbers_days=keep_numbers_days,
            **counts,
        )
        return counts


def _unlink(paths: list[str]) -> int:
    """Delete the purged recordings' files (rows first: a file without a row is never listed again)."""
    gone = 0
    for path in paths:
        try:
            os.unlink(path)
            gone += 1
        except FileNotFoundError:
            pass  # already gone: the goal is met
        except OSError as exc:
            log.error("recording_not_purged", path=path, error=exc.strerror)
    return gone
