"""Callers who misbehave: key floods, endless numbers, keys over prompts, hanging up at any step.

Each call is a real SIPp citizen through Asterisk 22 and the controller. Calls that do not
depend on each other run at once (each citizen on its own SIP port) to keep the file short.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ivr.routing import routes
from ivr.routing.menu import MAX_KEYS_KEPT, decide
from lab.citizen import CallRun, place_call
from tests.integration.conftest import (
    DEPARTMENTS_PORT,
    OFFICE_HOURS,
    PARTNERS_PORT,
    REPO,
    SEAT_PORTS,
    Controller,
    Phone,
    until,
)

pytestmark = pytest.mark.integration

FIRST_PORT = 5200  # citizens' SIP ports: clear of the phones (5080-5100) and the demo citizen (5070)


def citizen(n: int) -> str:
    return f"139000{n:05d}"


def masked(n: int) -> str:
    return f"139****{n % 10000:04d}"


def call_in_parallel(calls: list[tuple[int, str, dict[str, Any]]]) -> dict[int, CallRun]:
    """Place each (n, keys, options) call from citizen(n) at once; wait for them all."""
    with ThreadPoolExecutor(len(calls)) as pool:
        futures = {
            n: pool.submit(place_call, "12345", keys, caller=citizen(n), local_port=FIRST_PORT + n, **options)
            for n, keys, options in calls
        }
        return {n: f.result() for n, f in futures.items()}


def rows_by_caller(controller: Controller, count: int, timeout: float = 60) -> dict[str, dict[str, Any]]:
    return {r["caller_masked"]: r for r in controller.finished_calls(count, timeout=timeout)}


def steps(controller: Controller, row: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [s for s in controller.calllog.steps(row["call_id"]) if s["name"] == name]


def test_a_dtmf_flood_ends_the_way_the_menu_rules_say_and_the_controller_takes_the_next_call(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone]
) -> None:
    department = phones(DEPARTMENTS_PORT, talk_ms=1000)
    controller = start_controller()
    table = routes.load(REPO / "routes.yaml")
    mixed = "".join(random.Random(12345).choice("*#7") for _ in range(100)) + "1"

    runs = call_in_parallel(
        [
            # 120 stars over the intro (barge-in), then 1: every star repeats the menu, 1 routes.
            (1, "[" + "*" * 120 + "]1", {"first_key_ms": 300, "talk_ms": 8000}),
            # 100 invalid keys (7: no option; 8 is 查询办理进度): the third ends the call, the rest land on the goodbye
            (2, "[" + "7" * 100 + "]", {"first_key_ms": 300, "talk_ms": 15000}),
            # stars, hashes and invalid keys in a seeded mix, whatever the menu makes of them.
            (3, f"[{mixed}]", {"first_key_ms": 300, "talk_ms": 8000}),
        ]
    )

    assert all(run.succeeded for run in runs.values()), {n: r.stderr[-500:] for n, r in runs.items()}
    rows = rows_by_caller(controller, 3)
    stars = rows[masked(1)]
    assert (stars["decision"], stars["reason"], stars["unit"], stars["menu_path"]) == (
        "dial",
        "menu_choice",
        "市公安局",
        "main",
    )
    assert stars["keys"] == "*" * MAX_KEYS_KEPT + "+89"  # 121 keys: the first 32 and a count
    assert len(steps(controller, stars, "key")) == 121  # not one key of the flood was lost
    assert stars["outcome"] == "connected"

    invalid = rows[masked(2)]
    assert (invalid["decision"], invalid["reason"], invalid["keys"], invalid["outcome"], invalid["hangup_by"]) == (
        "hangup",
        "too_many_invalid_keys",
        "777",
        "goodbye",
        "system",
    )

    expected = decide(table, "12345", mixed, dt.datetime.fromisoformat(OFFICE_HOURS))
    mixed_row = rows[masked(3)]
    assert (mixed_row["decision"], mixed_row["reason"], mixed_row["keys"], mixed_row["menu_path"]) == (
        expected.action,
        expected.reason,
        expected.keys,
        "/".join(expected.menu_path),
    )

    routed = [r for r in (stars, mixed_row) if r["decision"] == "dial"]
    # Only the chosen route's number is dialled, once per routed call.
    assert [u.split("@")[0] for u in department.invites()] == ["sip:3372000"] * len(routed)

    # Still healthy: the next citizen is routed as usual.
    after = place_call("12345", "1", caller=citizen(4), local_port=FIRST_PORT + 4, talk_ms=8000)
    assert after.succeeded, after.stderr
    assert rows_by_caller(controller, 4)[masked(4)]["outcome"] == "connected"
    assert not controller.saw("call_crashed")


def test_a_100_digit_number_after_9_is_refused_once_then_the_caller_types_the_right_one(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone]
) -> None:
    department = phones(DEPARTMENTS_PORT, talk_ms=1000)
    controller = start_controller()
    hundred = "".join(str(d % 10) for d in range(1, 101))

    run = place_call(
        "12345",
        f"9[{hundred}#]3022782#",
        caller=citizen(5),
        local_port=FIRST_PORT + 5,
        first_key_ms=300,
        gap_ms=1500,
        talk_ms=8000,
    )

    assert run.succeeded, run.stderr
    assert [u.split("@")[0] for u in department.invites()] == ["sip:3022782"]  # never the 100 digits
    (row,) = controller.finished_calls()
    assert (row["reason"], row["target_number"], row["outcome"]) == ("number_entry", "3022782", "connected")
    assert row["keys"] == "9" + hundred[: MAX_KEYS_KEPT - 1] + "+78"  # 110 keys, bounded in the log
    invalid = [s for s in steps(controller, row, "menu") if s["detail"].get("notice") == "invalid"]
    assert len(invalid) == 1  # one number typed too long is one wrong number
    assert hundred not in controller.log()


def test_keys_pressed_during_prompts_route_as_if_pressed_after_them(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone]
) -> None:
    department = phones(DEPARTMENTS_PORT, talk_ms=1000)
    controller = start_controller()

    # 2 over the intro, 3 over the social menu's prompt: 民政局 (main/social, option 3).
    run = place_call(
        "12345", "23", caller=citizen(6), local_port=FIRST_PORT + 6, first_key_ms=500, gap_ms=400, talk_ms=8000
    )

    assert run.succeeded, run.stderr
    (row,) = controller.finished_calls()
    assert (row["keys"], row["menu_path"], row["reason"], row["route_id"]) == (
        "23",
        "main/social",
        "menu_choice",
        "minzheng",
    )
    assert len(department.invites()) == 1
    answered, decided = (steps(controller, row, name)[0]["at"] for name in ("answered", "decided"))
    # The intro alone lasts ~5 s and the main menu ~20 s more: only barge-in decides this soon.
    assert decided - answered < 4


@dataclass(frozen=True)
class Hangup:
    """A caller who hangs up at one step, and the row that must be left behind."""

    step: str
    keys: str
    talk_ms: int
    outcome: str
    hangup_by: str
    callback: str | None  # the reason on the callback list, or None: not a missed call
    must_have: tuple[str, ...] = ()  # steps the row must hold
    gap_ms: int = 800


HANGUPS = [
    Hangup("in the main menu", "", 3000, "abandoned", "caller", "in_menu", ("menu",)),
    Hangup("in a submenu", "2", 2000, "abandoned", "caller", "in_menu", ("key",)),
    Hangup("typing a number after 9", "930", 1500, "abandoned", "caller", "in_menu", ("key",), gap_ms=300),
    Hangup("while the department rings", "32", 6000, "abandoned", "caller", "during_transfer", ("ticket",)),
    Hangup("while bridged, before the department", "1", 5000, "connected", "caller", None, ("dial",)),
    # The department hangs up after 8 s; the citizen then hears the ticket number (~15 s with the
    # offer to repeat it on '*') before the survey.
    Hangup(
        "never: the department hangs up first", "1", 70000, "connected", "callee", None, ("callee_hangup", "survey")
    ),
    Hangup(
        "while the ticket number is said",
        "1",
        15000,
        "connected",
        "callee",
        None,
        ("callee_hangup", "ticket_told", "caller_hangup"),
    ),
    Hangup(
        "while recording an after-hours message",
        "31" + "," * 14 + "~",
        500,
        "message",
        "caller",
        "message:after_hours",
        ("message", "ticket"),
    ),
]
QUEUE_WAITER = 20  # citizen number of the caller who hangs up in the operators' queue


def hangup_routes(tmp_path: Path) -> Path:
    """routes.yaml with 住建委 (3-1) closed all day and 交通局 (3-2) on the partners trunk (no answer)."""
    text = (REPO / "routes.yaml").read_text(encoding="utf-8")
    text = text.replace(
        "  round-the-clock:\n", '  closed-in-the-lab:\n    workdays: "22:00-23:00"\n  round-the-clock:\n', 1
    )
    zhujian = 'number: "3022620"\n    mode: merge\n    effective: 2016-07-31\n    trunk: departments\n'
    jiaotong = "  - id: jiaotong\n"
    assert zhujian in text and jiaotong in text
    text = text.replace(zhujian, zhujian + "    hours: closed-in-the-lab\n", 1)
    head, tail = text.split(jiaotong, 1)
    tail = tail.replace("trunk: departments", "trunk: partners", 1)
    patched = tmp_path / "routes.yaml"
    patched.write_text(head + jiaotong + tail, encoding="utf-8")
    return patched


def test_a_caller_hanging_up_at_any_step_leaves_a_complete_row_and_missed_calls_are_called_back(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone], tmp_path: Path
) -> None:
    department = phones(DEPARTMENTS_PORT, talk_ms=8000)
    ringing = phones(PARTNERS_PORT, "phone_noanswer.xml")
    seats = [phones(port, talk_ms=25000) for port in SEAT_PORTS]
    controller = start_controller(hangup_routes(tmp_path))

    with ThreadPoolExecutor(len(HANGUPS) + 3) as pool:
        runs = {
            n: pool.submit(
                place_call,
                "12345",
                case.keys,
                caller=citizen(n),
                local_port=FIRST_PORT + n,
                talk_ms=case.talk_ms,
                gap_ms=case.gap_ms,
            )
            for n, case in enumerate(HANGUPS)
        }
        # Both operators busy with a caller each; a third caller waits in the queue, then gives up.
        for n in (10, 11):
            runs[n] = pool.submit(place_call, "12345", "0", caller=citizen(n), local_port=FIRST_PORT + n, talk_ms=35000)
        until(
            lambda: len(controller.events("dial_result")) >= 2 and sum(len(s.invites()) for s in seats) == 2,
            timeout=20,
            what="both operators to be talking",
        )
        runs[QUEUE_WAITER] = pool.submit(
            place_call, "12345", "0", caller=citizen(QUEUE_WAITER), local_port=FIRST_PORT + QUEUE_WAITER, talk_ms=8000
        )
        results = {n: f.result() for n, f in runs.items()}

    assert all(r.succeeded for r in results.values()), {
        n: r.stderr[-300:] for n, r in results.items() if not r.succeeded
    }
    rows = rows_by_caller(controller, len(runs))
    problems = []
    for n, case in enumerate(HANGUPS):
        row = rows[masked(n)]
        names = [s["name"] for s in controller.calllog.steps(row["call_id"])]
        got = (row["outcome"], row["hangup_by"])
        if got != (case.outcome, case.hangup_by) or names[-1] != "ended" or not set(case.must_have) <= set(names):
            problems.append(f"{case.step}: {got}, steps {names}")
        if row["ended_at"] is None or row["ended_at"] < row["started_at"]:
            problems.append(f"{case.step}: not ended properly")
    assert not problems, "\n".join(problems)

    waiter = rows[masked(QUEUE_WAITER)]
    assert (waiter["outcome"], waiter["hangup_by"]) == ("abandoned", "caller")
    assert [s["detail"].get("abandoned") for s in steps(controller, waiter, "queue_left")] == [True]
    assert [rows[masked(n)]["outcome"] for n in (10, 11)] == ["operator", "operator"]

    callbacks = {c["caller_masked"]: c for c in controller.calllog.callbacks()}
    expected = {masked(n): case.callback for n, case in enumerate(HANGUPS) if case.callback}
    expected[masked(QUEUE_WAITER)] = "in_queue"
    assert set(callbacks) == set(expected)
    for who, reason in expected.items():
        assert [c["reason"] for c in controller.calllog.callback_calls(callbacks[who]["id"])] == [reason], who

    assert len(ringing.invites()) == 1 and len(department.invites()) == 3
    for n in range(len(HANGUPS) + 1):
        assert citizen(n) not in controller.log()
