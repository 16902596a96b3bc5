"""Every error the hotline raises on purpose, in one tree.

    HotlineError
    ├── ConfigError                 settings or routes.yaml are wrong; carries FILE:LINE
    │   └── RoutesError             one or more problems in routes.yaml (all of them, not the first)
    ├── AriError                    Asterisk's REST interface said no, or could not be reached
    │   ├── AriNotFound             404: the channel/bridge/playback is already gone (normal in races)
    │   ├── AriConflict             409: wrong state, e.g. a channel not in Stasis any more
    │   ├── AriAuthError            401/403: credentials are wrong -- a configuration error, never retried
    │   └── AriUnavailable          connection refused, timeout, 5xx: retryable
    ├── AppReplaced                 another process registered our Stasis app: this controller stops
    ├── CallLogError                the call log's database refused a read or a write (ivr.calllog)
    │   └── StorageUnavailable      the database cannot be reached or opened: file or server gone,
    │                               locked, read-only, full, schema not writable
    ├── QueueFull                   the operator queue already holds max_queue callers (ivr.operators)
    ├── QueueTimeout                a caller waited max_wait_s for an operator without a seat
    ├── SeatStateError              a seat state change that cannot be made (unknown seat, no reason)
    ├── TransferRefused             an operator's ask that cannot be done (a number not in routes.yaml,
    │                               a call that ended); carries the HTTP status the API answers with
    ├── AlertPayloadError           alert relay: the body is not an Alertmanager webhook (ivr.alerts)
    ├── AlertDeliveryError          alert relay: the chat robot did not take the message
    ├── TicketError                 a ticket action refused as asked (ivr.ticketing); nothing changed
    │   ├── UnknownTicket           no such ticket
    │   ├── WrongUnit               the ticket is another unit's
    │   └── TransitionRefused       the ticket's state does not allow it, or it changed meanwhile
    └── CallEnded                   raised inside a call's coroutine when the caller hangs up; the
                                    normal way a call unwinds, so `finally` writes the record

Foreign exceptions (aiohttp, sqlite3, psycopg, yaml) are mapped into this tree once, at the boundary
that talks to them (ivr.ari.client, ivr.calllog, ivr.routing.yamlsrc); code above the boundary never
catches library exceptions. ValueError and TypeError still mean a caller broke a function's contract
(a programming error), never a condition of the outside world.
"""

from __future__ import annotations

from dataclasses import dataclass


class HotlineError(Exception):
    """Base of all hotline errors."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a config file, located to the line."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class ConfigError(HotlineError):
    """Settings are unusable; the message names what and where."""


class RoutesError(ConfigError):
    """routes.yaml has one or more problems; `problems` lists all of them in file order."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line))
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def single(cls, file: str, line: int, message: str) -> RoutesError:
        return cls([Problem(file, line, message)])


class AriError(HotlineError):
    """A REST call to Asterisk failed."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AriNotFound(AriError):
    """The object is gone: during cleanup this means the work is already done."""


class AriConflict(AriError):
    """The object is in the wrong state for the request (e.g. channel left Stasis)."""


class AriAuthError(AriError):
    """ARI rejected our credentials. Retrying cannot help; an operator must fix the config."""


class AriUnavailable(AriError):
    """Asterisk could not be reached or answered with a server error; worth retrying."""


class AppReplaced(HotlineError):
    """Another process registered our Stasis app name; we must stop, not fight."""


class CallLogError(HotlineError):
    """The call log's database refused a read or a write; the message says why (no caller number,
    no password), the driver's exception is the __cause__."""


class StorageUnavailable(CallLogError):
    """The database cannot be reached or opened, or cannot take any write now (file or server gone,
    locked past the wait, read-only, full): writes go to the journal, reads and commands fail."""


class QueueFull(HotlineError):
    """The line already holds `max_queue` callers: this one is not queued at all."""


class QueueTimeout(HotlineError):
    """The caller waited `max_wait_s` without a seat: the call flow takes a message instead."""


class SeatStateError(HotlineError):
    """A seat state change that cannot be made (unknown seat or state, a pause without reason): nothing changed."""


class TransferRefused(HotlineError):
    """An operator's ask that cannot be done: said to the operator (HTTP 4xx, a log event); nothing changed."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class AlertPayloadError(HotlineError):
    """The request body is not an Alertmanager webhook payload; says what is missing."""


class AlertDeliveryError(HotlineError):
    """The robot did not take the message; the text says what it answered."""


class TicketError(HotlineError):
    """A ticket action that cannot be done as asked; the message says what and why. Nothing was changed."""

    status = 400  # what the tickets API answers with (ivr.ticketing.api)


class UnknownTicket(TicketError):
    status = 404


class WrongUnit(TicketError):
    """The ticket is another unit's: a unit or partner acts on its own tickets only."""

    status = 403


class TransitionRefused(TicketError):
    status = 409


class CallEnded(HotlineError):
    """The caller's channel left: unwinds the call coroutine to its `finally`."""

    def __init__(self, reason: str, cause: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.cause = cause
