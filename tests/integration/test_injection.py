"""Hostile SIP input: odd numbers, poisoned caller-IDs, keys the menu lacks, a REFER from a department.

More than a thousand INVITEs are sent with SIPp (lab/sipp/fuzz_citizen.xml, driven by an
injection file) in bounded batches at 50 calls/s to 127.0.0.1:5060. Each case says what must
happen to it:

- REJECT: Asterisk refuses it (404 for a number the dialplan does not list, 400 or silence
  for what is not SIP at all); it never reaches the controller or a trunk.
- REACH: it is 12345 however spelled, from a caller-ID that is legal SIP: the controller
  answers, the citizen hangs up in the menu, and the row is complete with the caller masked.

Whatever the input, the phones behind every trunk must see no INVITE (the fuzz only reaches
the menu), Asterisk must end with no channel, and the controller must still route a call.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from ivr import privacy
from ivr.routing import routes
from ivr.routing.menu import decide
from lab.citizen import place_call
from lab.sipp.phone import SCENARIOS
from tests.integration.conftest import (
    DEPARTMENTS_PORT,
    OFFICE_HOURS,
    OPERATORS_PORT,
    PARTNERS_PORT,
    REPO,
    SEAT_PORTS,
    Controller,
    Phone,
    ctl,
)

pytestmark = pytest.mark.integration

REJECT, REACH = "reject", "reach"
NOT_FOUND = {"404"}  # the dialplan lists exact numbers only: anything else does not exist
# Bad SIP: refused, or dropped by the parser without an answer ("none": SIPp heard nothing in
# 5 s). A case with no result at all is a failure: SIPp aborted it on a response it did not expect.
UNPARSABLE = {"400", "404", "none"}

# Request-URI users (what follows "sip:" and precedes "@127.0.0.1:5060"), and what Asterisk
# must do with each. A field cannot hold ';' (the injection file's separator): see BATCHES.
NUMBERS: list[tuple[str, str, set[str]]] = [
    ("12345", REACH, {"200"}),
    ("%31%32%33%34%35", REACH, {"200"}),  # the same user, percent-encoded (RFC 3261 19.1.4)
    # Asterisk unescapes %00 and reads the user as a C string: this is 12345 (seen in the lab).
    ("12345%00", REACH, {"200"}),
    ("1234&5", REJECT, NOT_FOUND),
    ("12345,1", REJECT, NOT_FOUND),
    ("12345/../", REJECT, NOT_FOUND),
    ("12345%40evil", REJECT, NOT_FOUND),
    ("12345@evil", REJECT, UNPARSABLE),
    ("+8612345", REJECT, NOT_FOUND),
    ("012345", REJECT, NOT_FOUND),
    ("12345" + "0123456789" * 10, REJECT, NOT_FOUND),
    ("", REJECT, UNPARSABLE),
    ("*", REJECT, NOT_FOUND),
    ("%23", REJECT, NOT_FOUND),
    ("#", REJECT, UNPARSABLE),
    ("１２３４５", REJECT, UNPARSABLE),  # full-width digits, raw UTF-8
    ("热线", REJECT, UNPARSABLE),
    ("%E7%83%AD%E7%BA%BF", REJECT, NOT_FOUND),
    ("12345%0D%0AX-Evil: 1", REJECT, UNPARSABLE),
    ("1234", REJECT, NOT_FOUND),
    ("123456", REJECT, NOT_FOUND),
    ("99999", REJECT, NOT_FOUND),
    ("8000", REJECT, NOT_FOUND),  # the operators' duty line: not dialable from outside
    ("3372000", REJECT, NOT_FOUND),  # a department's own number: only the controller dials it
    ("s", REJECT, NOT_FOUND),
    ("h", REJECT, NOT_FOUND),
    ("i", REJECT, NOT_FOUND),
    ("operators", REJECT, NOT_FOUND),  # the fallback's extension lives in another context
    ("12345'%20OR%201=1%20--", REJECT, NOT_FOUND),
    ("$(reboot)", REJECT, NOT_FOUND),
    ("%2A%2A%2A", REJECT, NOT_FOUND),
    ("12345.", REJECT, NOT_FOUND),
    # Asterisk ignores '-' (a visual separator) when matching extensions: this is 12345.
    ("-12345", REACH, {"200"}),
    # user:password (RFC 3261 19.1.1): pjsip takes the user, 12345, and drops the password.
    ("12345:pw", REACH, {"200"}),
]


@dataclass(frozen=True)
class Caller:
    """A caller-ID as sent: From display name and user, P-Asserted-Identity user."""

    display: str
    user: str
    pai: str
    legal: bool = True  # legal SIP: a call to 12345 with it is answered


LONG = "9" * 300
CALLERS = [
    Caller("citizen", "13800138000", "13800138000"),
    Caller("' OR 1=1 --", "13800138001", "13800138001"),
    Caller("$(id)", "13800138002", "$(id)"),
    Caller("`reboot`", "13800138003", "13800138003"),
    Caller("<script>alert(1)</script>", "13800138004", "13800138004"),
    Caller("a" * 300, "13800138005", "13800138005"),
    Caller("张三", "13800138006", "13800138006"),
    Caller("Robert') DROP TABLE calls--", "13800138007", "13800138007"),  # no ';': the file's separator
    Caller("citizen", "$(id)", "$(id)"),
    Caller("citizen", "'OR'1'='1", "'OR'1'='1"),
    Caller("citizen", "%27%20OR%201=1%20--", "%27%20OR%201=1%20--"),
    Caller("citizen", "1380013800%00", "1380013800%00"),
    Caller("citizen", LONG, LONG),
    Caller("citizen", "%3Cscript%3E", "%3Cscript%3E"),
    Caller("citizen", "anonymous", "anonymous"),
    Caller("citizen", "+8613800138008", "+8613800138008"),
    Caller("citizen", "13800138009", "$(touch /tmp/pwned)"),
    Caller("citizen", "13800138010", "' OR 1=1 --"),
    Caller("citizen", "张三", "张三", legal=False),  # raw UTF-8 in a URI
    Caller("citizen", "<13800138011>", "x", legal=False),
    Caller("\x01\x02garbage\x7f", "13800138012", "13800138012"),  # pjsip takes it in a quoted name
    Caller('a "quoted" name', "13800138013", "13800138013", legal=False),
    Caller("citizen", "13800138014 13800138015", "x", legal=False),
    Caller("citizen", "", "", legal=False),
]


@dataclass(frozen=True)
class Batch:
    """One SIPp run: rows of (number, caller), and the ';'-holding parts it adds to every row."""

    name: str
    numbers: list[tuple[str, str, set[str]]]
    ruri_tail: str = ""
    uri_params: str = ""
    from_tail: str = ""


BATCHES = [
    Batch("numbers", NUMBERS),
    # ';' inside the user part: "12345;user=phone" is not the number 12345.
    Batch(
        "user-semicolon",
        [("12345", REJECT, NOT_FOUND), ("1234", REJECT, NOT_FOUND), ("", REJECT, UNPARSABLE)],
        ruri_tail=";user=phone",
    ),
    # a URI parameter after the host: the number is 12345, the parameter is ignored.
    Batch("uri-param", [("12345", REACH, {"200"}), ("99999", REJECT, NOT_FOUND)], uri_params=";user=phone"),
    # ';' in the caller's user part.
    Batch("caller-semicolon", [("12345", REACH, {"200"}), ("99999", REJECT, NOT_FOUND)], from_tail=";x=$(id)"),
    # the rest of the thousand: every odd number again, from a caller who is legal SIP.
    Batch("numbers-again", NUMBERS, from_tail=";phone-context=+86"),
]


@dataclass(frozen=True)
class Case:
    id: str
    number: str
    caller: Caller
    expect: str
    codes: set[str]


def cases_of(batch: Batch) -> list[Case]:
    out = []
    for n, (number, expect, codes) in enumerate(batch.numbers):
        for m, caller in enumerate(CALLERS):
            if not caller.legal:  # refused for the caller-ID if not already for the number
                out.append(
                    Case(
                        f"{batch.name}-{n}-{m}",
                        number,
                        caller,
                        REJECT,
                        UNPARSABLE | (codes if expect == REJECT else set()),
                    )
                )
            else:
                out.append(Case(f"{batch.name}-{n}-{m}", number, caller, expect, codes))
    return out


def run_batch(batch: Batch, cases: list[Case], workdir: Path, port: int) -> dict[str, str]:
    """Send every case of `batch` (50 calls/s, at most 100 at once); their results by case id."""
    workdir.mkdir(parents=True, exist_ok=True)
    rows = ["SEQUENTIAL"] + [f"{c.id};{c.number};{c.caller.display};{c.caller.user};{c.caller.pai}" for c in cases]
    csv = workdir / "cases.csv"
    csv.write_bytes("\n".join(rows).encode("utf-8") + b"\n")
    results = workdir / "results.log"
    cmd = [
        "sipp",
        "127.0.0.1:5060",
        "-sf",
        str(SCENARIOS / "fuzz_citizen.xml"),
        "-inf",
        str(csv),
        "-i",
        "127.0.0.1",
        "-p",
        str(port),
        "-mi",
        "127.0.0.1",
        "-mp",
        str(6000 + (port - 5070) * 10),
        "-m",
        str(len(cases)),
        "-r",
        "50",
        "-l",
        "100",
        "-nostdin",
        "-timeout",
        "120s",
        "-set",
        "ruri_tail",
        batch.ruri_tail,
        "-set",
        "uri_params",
        batch.uri_params,
        "-set",
        "from_tail",
        batch.from_tail,
        "-trace_logs",
        "-log_file",
        str(results),
        "-trace_err",
        "-error_file",
        str(workdir / "errors.log"),
    ]
    run = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=180, check=False)
    found = re.findall(r"case=(\S+) result=(\S+)", results.read_text(errors="replace") if results.exists() else "")
    errors = workdir / "errors.log"
    assert found, (
        f"sipp ran no case of {batch.name}: {run.stderr[-500:]} {errors.read_text()[-500:] if errors.exists() else ''}"
    )
    return dict(found)


def calls_processed() -> int:
    out = ctl("asterisk-cli", "core show channels count").stdout
    match = re.search(r"(\d+) calls? processed", out)
    assert match, out
    return int(match.group(1))


def trunk_phones(phones: Callable[..., Phone]) -> dict[int, Phone]:
    """A phone behind every trunk Asterisk could originate on: departments, operators, seats, partners."""
    return {port: phones(port, talk_ms=1000) for port in (DEPARTMENTS_PORT, OPERATORS_PORT, *SEAT_PORTS, PARTNERS_PORT)}


def test_a_thousand_hostile_invites_are_refused_or_answered_and_nothing_else_is_originated(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone], tmp_path: Path
) -> None:
    behind = trunk_phones(phones)
    controller = start_controller()
    processed_before = calls_processed()

    all_cases: list[Case] = []
    results: dict[str, str] = {}
    for n, batch in enumerate(BATCHES):
        cases = cases_of(batch)
        all_cases += cases
        results |= run_batch(batch, cases, tmp_path / f"fuzz-{batch.name}", port=5300 + n)
    assert len(all_cases) >= 1000

    wrong = [
        f"{c.id} {c.number!r} from {c.caller.user[:40]!r}: expected {c.expect} {sorted(c.codes)}, "
        f"got {results.get(c.id, 'no result')}"
        for c in all_cases
        if results.get(c.id, "no result") not in c.codes
    ]
    assert not wrong, f"{len(wrong)} cases:\n" + "\n".join(wrong[:40])

    reached = [c for c in all_cases if results.get(c.id) == "200"]
    assert reached and all(c.expect == REACH for c in reached)
    # Every call that reached the controller has a complete row: answered, in the menu, ended.
    rows = controller.finished_calls(len(reached), timeout=60)
    assert len(rows) == len(reached)
    assert all((r["entry"], r["outcome"], r["hangup_by"]) == ("12345", "abandoned", "caller") for r in rows)
    assert all(r["answered_at"] and r["ended_at"] for r in rows)
    steps = [[s["name"] for s in controller.calllog.steps(r["call_id"])] for r in rows[:20]]
    assert all(names[0] == "answered" and names[-1] == "ended" for names in steps), steps
    # Asterisk ran the dialplan for exactly the calls the controller got (nothing else came in).
    assert calls_processed() - processed_before == len(reached)
    # Callers stay masked: no hostile caller-ID in full, in the log or in the calls table.
    log = controller.log()
    stored = {r["caller_masked"] for r in rows}
    for caller in CALLERS:
        if len(caller.user) >= 8:
            assert caller.user not in log and caller.user not in stored, caller.user
    assert all(len(m) <= len(privacy.mask(LONG)) for m in stored), stored  # masked, whatever came in

    # No trunk was rung: the fuzz never gets past the menu.
    assert {port: phone.invites() for port, phone in behind.items()} == {port: [] for port in behind}

    # And the controller still routes a citizen.
    call = place_call("12345", "1", caller="13912345678", local_port=5310, talk_ms=8000)
    assert call.succeeded, call.stderr
    assert [u.split("@")[0] for u in behind[DEPARTMENTS_PORT].invites()] == ["sip:3372000"]
    assert not controller.saw("call_crashed")


# Keys no menu offers: A-D (no Chinese keypad has them), 7 in the main menu (8 is the progress query), 7 and 9 in a
# submenu (number entry is a main-menu option). Each script ends in a decision: no silences.
ODD_KEYS = ["ABC", "D71", "2791", "9B*88", "9123A*88", "7878", "6C#C1", "93022782A"]


def test_keys_the_menu_does_not_offer_are_invalid_and_only_chosen_routes_are_dialled(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone]
) -> None:
    behind = trunk_phones(phones)
    controller = start_controller()
    table = routes.load(REPO / "routes.yaml")
    expected = {keys: decide(table, "12345", keys, dt.datetime.fromisoformat(OFFICE_HOURS)) for keys in ODD_KEYS}

    with ThreadPoolExecutor(len(ODD_KEYS)) as pool:
        runs = [
            pool.submit(
                place_call,
                "12345",
                keys,
                caller=f"1390000{n:04d}",
                local_port=5320 + n,
                first_key_ms=800,
                gap_ms=600,
                talk_ms=6000,
            )
            for n, keys in enumerate(ODD_KEYS)
        ]
        assert all(r.result().succeeded for r in runs), [r.result().stderr[-300:] for r in runs]

    rows = {r["caller_masked"]: r for r in controller.finished_calls(len(ODD_KEYS), timeout=60)}
    for n, keys in enumerate(ODD_KEYS):
        row, want = rows[f"139****{n:04d}"], expected[keys]
        assert (row["keys"], row["decision"], row["reason"], row["route_id"]) == (
            want.keys,
            want.action,
            want.reason,
            want.route.id if want.route else "",
        ), keys
    dialled = sorted(f"sip:{d.route.dial}" for d in expected.values() if d.action == "dial" and d.route)
    assert dialled  # the set holds both refusals and routes
    assert sorted(u.split("@")[0] for u in behind[DEPARTMENTS_PORT].invites()) == dialled
    assert all(not behind[port].invites() for port in behind if port != DEPARTMENTS_PORT)


def test_a_department_cannot_transfer_the_citizen_with_refer(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone]
) -> None:
    department = phones(DEPARTMENTS_PORT, "phone_refer.xml", talk_ms=3000)
    duty_line = phones(OPERATORS_PORT)
    controller = start_controller()
    processed_before = calls_processed()

    call = place_call("12345", "1", caller="13912345678", local_port=5330, talk_ms=15000)

    assert call.succeeded, call.stderr
    messages = department.messages()
    assert "REFER sip:" in messages
    refused = re.search(r"SIP/2.0 (\d{3}) [^\n]*\n(?:[^\n]+\n)*?CSeq: 2 REFER", messages)
    assert refused and refused.group(1) in {"403", "405", "501", "603"}, messages[-3000:]
    assert [u.split("@")[0] for u in department.invites()] == ["sip:3372000"]
    assert duty_line.invites() == []  # the REFER's target was never rung
    (row,) = controller.finished_calls()
    assert (row["outcome"], row["hangup_by"]) == ("connected", "callee")
    assert calls_processed() - processed_before == 1
