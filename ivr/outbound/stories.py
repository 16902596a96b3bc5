"""The two calls the hotline places, told top to bottom on a CallControl (ivr.call.control).

Like a citizen's call (ivr.call.session), each story only performs: the runner (ivr.outbound.runner)
rings the first party, hands the answered call here, and keeps what the story returns.

- `connect_citizen` (漏接回拨): the operator seat has answered; it hears why it was rung, the citizen is
  dialled over the carrier trunk, and the two are bridged until one hangs up.
- `ask_about_handling` (回访): the citizen has answered; they hear which matter (the ticket number) and
  rate its handling 1-3, or press 9 never to be called about this ticket again.
"""

from __future__ import annotations

from dataclasses import dataclass

from ivr.call.control import CallControl, DialStatus
from ivr.citizen.ticket_number import digit_prompts, keypad_number
from ivr.prompts import Prompts

OPT_OUT_KEY = "9"
RATINGS = ("1", "2", "3")
DISSATISFIED = "3"


@dataclass(frozen=True)
class CitizenLeg:
    """How dialling the citizen ended."""

    status: str  # the dial status (ANSWER, BUSY, NOANSWER, ...)
    outcome: str  # reached, busy, no_answer, unreachable
    talk_seconds: float = 0.0


_OUTCOMES = {DialStatus.ANSWER: "reached", DialStatus.BUSY: "busy", DialStatus.NOANSWER: "no_answer"}


def outcome_of(status: DialStatus) -> str:
    return _OUTCOMES.get(status, "unreachable")


async def connect_citizen(
    call: CallControl, prompts: Prompts, dial_string: str, ring_seconds: int, caller_id: str
) -> CitizenLeg:
    """The seat on `call` has answered: tell it, ring the citizen, bridge them. The seat hanging up raises CallEnded."""
    await call.play([prompts.sound("callback-seat")])
    result = await call.dial(dial_string, ring_seconds, caller_id=caller_id, label="callback")
    if not result.ok:
        await call.play([prompts.sound("callback-citizen-unreached")])
        return CitizenLeg(result.status.value, outcome_of(result.status))
    bridged = await call.bridge(result.channel)
    return CitizenLeg(result.status.value, "reached", bridged.talk_seconds)


async def ask_about_handling(call: CallControl, prompts: Prompts, ticket_id: str, key_timeout: float = 8) -> str:
    """The citizen on `call` has answered: which matter, then the 1-3 question; the key ('' for none).

    Any other key, or none, gets the question once more.
    """
    names = ["followup-intro", *digit_prompts(keypad_number(ticket_id)), "followup-question"]
    for _ in range(2):
        await call.play([prompts.sound(n) for n in names], barge_in=True)
        key = await call.collect_digit(key_timeout)
        if key in RATINGS:
            await call.play([prompts.sound("followup-reopened" if key == DISSATISFIED else "followup-thanks")])
            return key
        if key == OPT_OUT_KEY:
            await call.play([prompts.sound("followup-opted-out")])
            return key
        names = ["followup-question"]
    await call.play([prompts.sound("followup-goodbye")])
    return ""
