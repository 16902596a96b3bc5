"""The two calls the hotline places, on a ScriptedCall: what the seat and the citizen hear, and the answer."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ivr.call.scripted import Line, Script, ScriptedCall, VirtualTimeLoop
from ivr.citizen.ticket_number import keypad_number
from ivr.outbound import stories
from ivr.prompts import Prompts
from ivr.routing import routes

ROOT = Path(__file__).resolve().parents[3]
TABLE = routes.load(ROOT / "routes.yaml")
TICKET = "12345-20261124-480000"
NUMBER = " ".join(f"digit-{d}" for d in keypad_number(TICKET))
T = TypeVar("T")


def run(script: Script, story: Callable[[ScriptedCall], Coroutine[Any, Any, T]]) -> tuple[T, ScriptedCall]:
    async def main() -> tuple[T, ScriptedCall]:
        call = ScriptedCall(TABLE, script)
        return await story(call), call

    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


@pytest.mark.parametrize(
    ("keys", "said"),
    [("1", "followup-thanks"), ("2", "followup-thanks"), ("3", "followup-reopened"), ("9", "followup-opted-out")],
)
def test_the_citizen_hears_which_matter_and_answers_with_one_key(keys: str, said: str) -> None:
    key, call = run(Script(keys=keys), lambda c: stories.ask_about_handling(c, Prompts(), TICKET))

    assert key == keys
    assert [media for _, media in call.verbs("play")] == [f"followup-intro {NUMBER} followup-question", said]


def test_no_key_or_a_wrong_one_gets_the_question_once_more_then_goodbye() -> None:
    key, call = run(Script(keys="7,"), lambda c: stories.ask_about_handling(c, Prompts(), TICKET))

    assert key == ""
    heard = [media for _, media in call.verbs("play")]
    assert heard == [f"followup-intro {NUMBER} followup-question", "followup-question", "followup-goodbye"]


def test_the_answered_seat_hears_why_then_the_citizen_is_dialled_and_bridged() -> None:
    leg, call = run(
        Script(talk_seconds=42.0),
        lambda c: stories.connect_citizen(c, Prompts(), "PJSIP/13912345678@carrier", 30, "12345"),
    )

    assert (leg.status, leg.outcome, leg.talk_seconds) == ("ANSWER", "reached", 42.0)
    assert call.verbs("play", "dial", "bridge") == [
        ("play", "callback-seat"),
        ("dial", "13912345678", "callback", "ANSWER"),
        ("bridge", "scripted-out1"),
    ]


def test_a_citizen_who_does_not_answer_is_told_to_the_seat() -> None:
    leg, call = run(
        Script(department=Line.NOANSWER),
        lambda c: stories.connect_citizen(c, Prompts(), "PJSIP/13912345678@carrier", 30, "12345"),
    )

    assert (leg.status, leg.outcome) == ("NOANSWER", "no_answer")
    assert [media for _, media in call.verbs("play")] == ["callback-seat", "callback-citizen-unreached"]
