"""What the call's story needs from a call: the `CallControl` seam, and what its verbs return.

`handle_call` (ivr.call.session) speaks only to this Protocol. Two things implement it:
`AriCall` (ivr.call.ari_call), a citizen's channel on Asterisk, and `ScriptedCall`
(ivr.call.scripted), a call whose keys, department and operators are written in advance —
what `hotline simulate` and the session's unit tests run the same story on.

The dial statuses are Asterisk's Dial() DIALSTATUS words, kept as they are in the call log.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from ivr.ari import events as ev

T = TypeVar("T")


class DialStatus(enum.StrEnum):
    """How ringing a line ended: Asterisk's DIALSTATUS, plus our TRUNK_DOWN."""

    ANSWER = "ANSWER"
    BUSY = "BUSY"
    NOANSWER = "NOANSWER"
    CONGESTION = "CONGESTION"
    CHANUNAVAIL = "CHANUNAVAIL"
    CANCEL = "CANCEL"
    TRUNK_DOWN = "TRUNK_DOWN"  # ours: Asterisk refused to create the outbound channel (endpoint missing/unreachable)


FAILED_DIAL = frozenset(DialStatus) - {DialStatus.ANSWER}

# Q.850 causes that tell us why an outbound channel died before answer.
CAUSE_TO_STATUS = {
    17: DialStatus.BUSY,
    18: DialStatus.NOANSWER,
    19: DialStatus.NOANSWER,
    21: DialStatus.CONGESTION,
    34: DialStatus.CONGESTION,
    38: DialStatus.CONGESTION,
    1: DialStatus.CHANUNAVAIL,
    3: DialStatus.CHANUNAVAIL,
    20: DialStatus.CHANUNAVAIL,
    27: DialStatus.CHANUNAVAIL,
}


@dataclass
class DialResult:
    status: DialStatus
    channel: str
    cause: int = 0
    started: float = 0.0
    answered: float | None = None

    @property
    def ok(self) -> bool:
        return self.status is DialStatus.ANSWER

    def leg_hung_up(self, event: ev.ChannelHangupRequest | ev.ChannelDestroyed, *, status_known: bool) -> bool:
        """Keep the dialled leg's hang-up cause; True once the leg is destroyed. Unless Dial has
        already said how it ended, the status is then read from that cause."""
        self.cause = event.cause or self.cause
        if not isinstance(event, ev.ChannelDestroyed):
            return False
        if not status_known:
            self.status = CAUSE_TO_STATUS.get(self.cause, DialStatus.CHANUNAVAIL)
        return True


@dataclass
class BridgeResult:
    ended_by: str  # "callee": the caller hanging up raises CallEnded instead
    talk_seconds: float
    cause: int = 0


@dataclass(frozen=True)
class LegEvent:
    """What a dialled leg did while the call listened: pressed `key`, or hung up (key None)."""

    channel: str
    key: str | None = None


class CallControl(Protocol):
    """One citizen's call as the story drives it.

    Every verb raises `ivr.errors.CallEnded` when the caller hangs up while it waits (except
    `record`, where hanging up is how a message ends), and `ivr.errors.AriError` when the
    telephony refuses a request. Keys pressed at any time are buffered in `digits`.
    """

    @property
    def caller_number(self) -> str:
        """The caller's number, unmasked: only for the callback list, never for logs."""

    @property
    def digits(self) -> deque[str]: ...

    @property
    def caller_up(self) -> bool: ...

    @property
    def hangup_cause(self) -> int: ...

    @property
    def talk_seconds(self) -> float:
        """Seconds bridged so far (0 if never bridged)."""

    async def answer(self) -> None: ...

    async def play(self, media: list[str], *, barge_in: bool = False) -> bool:
        """Play media back to back; with barge_in a key stops it (True if so)."""

    async def play_until(self, media: list[str], awaitable: Awaitable[T]) -> T:
        """Play `media` (looping) until `awaitable` completes."""

    async def collect_digit(self, timeout: float) -> str | None:
        """One key (a buffered one at once), or None after `timeout` seconds."""

    async def dial(
        self, endpoint: str, ring_seconds: int, *, caller_id: str, label: str, ringback: bool = True
    ) -> DialResult:
        """Ring a dial string from routes.yaml until answer or failure; the caller hears ringback
        (unless `ringback` is False: they are talking or on hold meanwhile)."""

    async def bridge(self, other: str) -> BridgeResult:
        """Talk with the answered channel until either side hangs up."""

    def ring_chain(self, extension: str) -> AsyncIterator[tuple[int, DialResult]]:
        """HOTLINE_DIAL_PATH=dialplan: Asterisk rings a route's ring chain, the dialplan extension
        `extension` (ivr.routing.dialplan.chain_extension), with ringback. Yields (n, result) for each
        number as it ends and stops after an answer (then `talked_in_dialplan` follows the
        conversation). Yields nothing when the loaded dialplan lacks the extension: nothing was rung."""

    async def talked_in_dialplan(self) -> BridgeResult:
        """The conversation the ring chain's answer began, until the department hangs up."""

    async def talk_with(self, legs: Sequence[str], *, hold: bool = False) -> None:
        """Arrange the call's one conversation: the caller and exactly `legs` in it — or, with
        `hold`, the legs without the caller, who hears hold music. Keys pressed on a leg are
        never passed to the others (an operator's feature codes stay unheard)."""

    async def listen(self, legs: Collection[str], command: Awaitable[T]) -> LegEvent | T:
        """Wait for a key or a hang-up on one of `legs`, or for `command` (whichever first)."""

    async def drop(self, leg: str) -> None:
        """Hang up one dialled leg (an operator leaving, a department cancelled)."""

    async def record(self, name: str, max_seconds: int = 60, max_silence_seconds: int = 5) -> tuple[str, int]:
        """A voice message: (state, seconds); 'done' when one was kept."""

    async def record_leg(self, leg: str, path: str) -> bool:
        """Record the answered `leg` (both directions) into `path`, as Asterisk sees it, until the leg
        ends; False if the leg went away before the recording started."""

    async def wait(self, awaitable: Awaitable[T], timeout: float) -> T | None:
        """Await something outside the call (a queue turn) while watching the caller."""

    async def hangup(self) -> None: ...

    async def cleanup(self) -> None:
        """Hang up every leg dialled for the call and undo its bridges."""

    def close(self) -> None:
        """Forget the call (after cleanup)."""
