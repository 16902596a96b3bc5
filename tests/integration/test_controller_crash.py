"""A controller killed with SIGKILL mid-conversation: the citizens keep talking, the next one completes the books."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from lab.citizen import place_call
from tests.integration.conftest import DEPARTMENTS_PORT, OPERATORS_PORT, Ari, Controller, Phone, until

pytestmark = pytest.mark.integration

TALK_S = 20  # how long the department talks before it hangs up
TALKERS = 2


def received_requests(phone: Phone, method: str) -> int:
    """How many `method` requests the phone received (SIPp's trace holds what it sent, too)."""
    blocks = phone.messages().split("-----------------------------------------------")
    return sum(1 for b in blocks if "message received" in b and f"\n{method} sip:" in b)


def sent_requests(phone: Phone, method: str) -> int:
    blocks = phone.messages().split("-----------------------------------------------")
    return sum(1 for b in blocks if "message sent" in b and f"\n{method} sip:" in b)


ARI_PATH = {"HOTLINE_DIAL_PATH": "ari"}


def test_conversations_go_on_through_a_controller_kill_and_the_next_one_completes_their_rows(
    asterisk: Ari, start_controller: Callable[..., Controller], phones: Callable[..., Phone]
) -> None:
    # The ARI path: the controller's own bridges, as recorded routes and operators' calls have (the
    # dialplan path, where Asterisk holds the conversation, is the next test).
    department = phones(DEPARTMENTS_PORT, talk_ms=TALK_S * 1000)
    duty_line = phones(OPERATORS_PORT, talk_ms=1000)  # where a dead controller's callers went before
    first = start_controller(env=ARI_PATH)

    with ThreadPoolExecutor(TALKERS + 2) as pool:
        # Citizens who would talk for a minute: the department ends each conversation.
        talkers = [
            pool.submit(place_call, "12345", "1", caller=f"1391234{n:04d}", talk_ms=60000, local_port=5071 + n)
            for n in range(TALKERS)
        ]
        until(
            lambda: sum(len(b["channels"]) == 2 for b in asterisk.bridges()) == TALKERS,
            timeout=30,
            what="both citizens to be bridged to the department",
        )
        # One caller listening to the menu (hangs up 10 s after the answer, in the middle of the
        # menu heard again), one who hangs up while no controller runs (2.5 s after the answer:
        # the kill comes ~1 s after it, the restart 3 s later).
        listener = pool.submit(place_call, "12345", "", caller="13900000101", talk_ms=10000, local_port=5075)
        leaver = pool.submit(place_call, "12345", "", caller="13900000202", talk_ms=2500, local_port=5076)
        until(lambda: len(first.events("call_arrived")) == TALKERS + 2, what="the two menu callers to arrive")
        time.sleep(1.0)  # into the talk, and the menu callers into the menu

        first.killed = True
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(5)
        killed_at = time.time()
        time.sleep(3.0)
        second = start_controller(env=ARI_PATH)
        assert second.saw("leftovers_found", talking=TALKERS, waiting=1)

        assert all(t.result().succeeded for t in talkers), [t.result().stderr for t in talkers]
        assert listener.result().succeeded and leaver.result().succeeded

    # Each conversation lasted its full length: the department hung up, nobody hung up on it.
    assert (sent_requests(department, "BYE"), received_requests(department, "BYE")) == (TALKERS, 0)

    # Every row complete: the adopted and resumed ones are written again when they end.
    def complete() -> list[dict[str, Any]]:
        rows = second.calllog.calls()
        return rows if len(rows) == TALKERS + 2 and all(r["ended_at"] for r in rows) else []

    rows = {r["caller_masked"]: r for r in until(complete, timeout=15, what="every row to be complete")}
    for n in range(TALKERS):
        row = rows[f"139****{n:04d}"]
        assert (row["outcome"], row["hangup_by"], row["unit"]) == ("connected", "callee", "市公安局")
        assert TALK_S - 1 <= row["talk_seconds"] <= TALK_S + 1, row
        assert row["ended_at"] > killed_at + 3
        steps = [s["name"] for s in second.calllog.steps(row["call_id"])]
        assert steps == ["adopted", "callee_hangup", "ended"]

    # The menu caller heard the menu again (not the duty line), in the same row.
    assert duty_line.invites() == []
    heard = rows["139****0101"]
    steps = [s["name"] for s in second.calllog.steps(heard["call_id"])]
    assert steps[:3] == ["resumed", "answered", "menu"], steps
    assert (heard["outcome"], heard["hangup_by"]) == ("abandoned", "caller")

    # Whose channels were gone at the restart: interrupted, as before.
    assert rows["139****0202"]["outcome"] == "interrupted"
    assert second.saw("controller_starting", interrupted_calls=TALKERS + 2)
    # (0 channels and 0 bridges left afterwards: the conftest checks it after every test.)


def test_a_ring_chains_conversation_goes_on_through_a_controller_kill_and_the_next_one_finishes_the_call(
    asterisk: Ari, start_controller: Callable[..., Controller], phones: Callable[..., Phone]
) -> None:
    """HOTLINE_DIAL_PATH=dialplan: Asterisk, not the controller, holds a conversation its ring chain made.

    The restarted controller finds the caller in the chain, follows the talk to its end and, when the
    department hangs up, gives the caller the ticket number and the survey, in the same row."""
    dialplan = {"HOTLINE_DIAL_PATH": "dialplan"}
    department = phones(DEPARTMENTS_PORT, talk_ms=TALK_S * 1000)
    first = start_controller(env=dialplan)

    with ThreadPoolExecutor(1) as pool:
        talker = pool.submit(place_call, "12345", "1", caller="13912340000", talk_ms=60000, local_port=5071)
        until(lambda: department.invites(), timeout=30, what="the chain to ring the department")
        assert first.saw("ring_chain_started")
        time.sleep(2.0)  # into the talk

        first.killed = True
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(5)
        killed_at = time.time()
        time.sleep(3.0)
        second = start_controller(env=dialplan)
        assert second.saw("chains_found", talking=1, ringing=0, without_row=0), second.events("chains_found")

        call = talker.result()
        assert call.succeeded, call.stderr

    # The conversation lasted its full length: the department hung up, nobody hung up on it.
    assert (sent_requests(department, "BYE"), received_requests(department, "BYE")) == (1, 0)

    def complete() -> list[dict[str, Any]]:
        rows = second.calllog.calls()
        return rows if len(rows) == 1 and rows[0]["ended_at"] else []

    (row,) = until(complete, timeout=15, what="the row to be complete")
    assert (row["outcome"], row["hangup_by"], row["unit"]) == ("connected", "callee", "市公安局")
    assert TALK_S - 1 <= row["talk_seconds"] <= TALK_S + 1, row
    assert row["ended_at"] > killed_at + TALK_S - 5
    steps = [s["name"] for s in second.calllog.steps(row["call_id"])]
    assert steps[0] == "adopted" and "callee_hangup" in steps and "survey" in steps, steps
    assert second.saw("ticket_told")
    assert second.saw("controller_starting", interrupted_calls=1)


def test_a_chain_nobody_answers_while_no_controller_runs_sends_the_caller_to_the_duty_line(
    asterisk: Ari, start_controller: Callable[..., Controller], phones: Callable[..., Phone]
) -> None:
    """The dialplan path: the chain ends (no answer) while no controller runs, so the caller's return to
    Stasis fails. Not dropped: the apology and the operators' duty line, as a caller arriving then."""
    department = phones(DEPARTMENTS_PORT, "phone_noanswer.xml")
    duty_line = phones(OPERATORS_PORT, talk_ms=2000)
    first = start_controller()  # the default dial path: the dialplan's

    with ThreadPoolExecutor(1) as pool:
        caller = pool.submit(
            place_call, "12345", "1", caller="13912340001", talk_ms=60000, local_port=5071, timeout_s=120
        )
        until(lambda: department.invites(), timeout=30, what="the chain to ring the department")
        assert first.saw("ring_chain_started")
        first.killed = True
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(5)
        # The department rings its 20 s out; then the chain's Stasis() finds no controller.
        until(lambda: duty_line.invites(), timeout=45, what="the caller to reach the duty line")
        call = caller.result()
        assert call.succeeded, call.stderr  # the duty line hung up after its talk: nobody dropped the caller

    assert len(department.invites()) == 1
    second = start_controller()
    (row,) = second.calllog.calls()
    assert row["outcome"] == "interrupted"  # what the dead controller could not finish (README: it stays so)
