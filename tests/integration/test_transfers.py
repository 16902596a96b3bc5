"""Operators pass citizens on through the controller — consult, three-way, blind, emergency — with real calls.

A SIPp citizen presses 0; a SIPp seat phone answers (seat-1 on :5091, seat-2 on :5092) and either
types feature codes itself (lab.sipp.seat) or is driven through the operators' HTTP API; the
department and emergency lines are the SIPp phone on the departments trunk (:5080). Each test
checks the INVITEs each phone got, the call log's steps, and (the conftest) that Asterisk holds
no channel and no bridge afterwards. Transfers are never SIP REFER: the seat phones never send one.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from ivr.calllog.seats import seat_events
from ivr.operators.desk import seat_token
from lab.citizen import CallRun, place_call
from lab.sipp.seat import seat_scenario
from tests.integration.conftest import DEPARTMENTS_PORT, SEAT_PORTS, STATE, Controller, Phone, until

pytestmark = pytest.mark.integration

GONGAN = "3372000"  # 市公安局
KEY = (STATE / "caller-hash.key").read_text(encoding="utf-8").strip().encode()


def asterisk_plays(name: str) -> bool:
    """Whether the lab's Asterisk has `name` open now: music on hold (mode=files) streams a file it holds open."""
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or (proc / "comm").read_text().strip() != "asterisk":
                continue
            if any(str(fd.readlink()).endswith(name) for fd in (proc / "fd").iterdir()):
                return True
        except OSError:
            continue  # a process or descriptor gone meanwhile
    return False


class Api:
    """The operators' API of the test's controller, as one token holder sees it."""

    def __init__(self, seat: str = "*") -> None:
        self.token = seat_token(KEY, seat)

    def request(
        self, method: str, path: str, body: Any = None, *, raw: bytes | None = None, token: str | None = ""
    ) -> tuple[int, dict[str, Any]]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        headers = {"Content-Type": "application/json"}
        token = self.token if token == "" else token
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(f"http://127.0.0.1:9345/api/v1{path}", data, headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")

    def get(self, path: str) -> dict[str, Any]:
        status, body = self.request("GET", path)
        assert status == 200, body
        return body

    def post(self, path: str, body: Any = None, **kw: Any) -> tuple[int, dict[str, Any]]:
        return self.request("POST", path, body if body is not None else {}, **kw)

    def call_at_operator(self) -> str:
        calls = until(lambda: self.get("/operator-calls")["calls"], timeout=30, what="a call at an operator")
        return str(calls[0]["call_id"])


def citizen(pool: ThreadPoolExecutor, keys: str = "0", talk_ms: int = 60000) -> Future[CallRun]:
    return pool.submit(place_call, "12345", keys, first_key_ms=1000, talk_ms=talk_ms)


def transfers(controller: Controller, call_id: str) -> list[dict[str, Any]]:
    return [s["detail"] for s in controller.calllog.steps(call_id) if s["name"] == "transfer"]


def numbers(phone: Phone) -> list[str]:
    return [uri.split("@")[0].removeprefix("sip:") for uri in phone.invites()]


def no_refer(*phones: Phone) -> bool:
    return not any("REFER sip:" in phone.messages() for phone in phones)


def test_consult_completed_by_feature_codes_leaves_the_citizen_with_the_department(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone], tmp_path: Path
) -> None:
    department = phones(DEPARTMENTS_PORT, talk_ms=12000)
    codes = seat_scenario(tmp_path / "seat", [(3000, f"*1{GONGAN}#"), (5000, "*5#")], talk_ms=60000)
    seat = phones(SEAT_PORTS[0], scenario=codes)
    controller = start_controller()

    run = place_call("12345", "0", first_key_ms=1000, talk_ms=90000)

    assert run.succeeded, run.stderr
    (row,) = controller.finished_calls(1, timeout=30)
    assert (row["outcome"], row["hangup_by"]) == ("operator", "callee")  # the department hung up last
    assert numbers(department) == [GONGAN] and len(seat.invites()) == 1
    (step,) = transfers(controller, row["call_id"])
    assert (step["kind"], step["target"], step["unit"], step["number"]) == ("consult", "gongan", "市公安局", GONGAN)
    assert (step["operator"], step["by"], step["outcome"], step["handed_over"]) == ("seat-1", "dtmf", "completed", True)
    assert step["answered_at"] >= step["asked_at"]
    assert no_refer(department, seat)


def test_consult_cancelled_through_the_api_and_bad_asks_are_refused_changing_nothing(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone]
) -> None:
    department = phones(DEPARTMENTS_PORT, talk_ms=30000)
    seat = phones(SEAT_PORTS[0], talk_ms=20000)
    controller = start_controller()
    api = Api()

    with ThreadPoolExecutor(1) as pool:
        call = citizen(pool)
        call_id = api.call_at_operator()
        # Refusals first: a number not in routes.yaml, malformed bodies, no or another seat's token.
        path = f"/operator-calls/{call_id}/transfer"
        status, body = api.post(path, {"kind": "consult", "target": "9999999"})
        assert status == 422 and "not a number in routes.yaml" in body["error"]
        assert api.post(path, raw=b"{not json")[0] == 400
        assert api.post(path, {"kind": "sideways", "target": GONGAN})[0] == 400
        assert api.post(path, {"kind": "consult", "target": GONGAN}, token=None)[0] == 401
        assert Api("seat-2").post(path, {"kind": "consult", "target": GONGAN})[0] == 403
        assert api.post(f"/operator-calls/{call_id}/cancel")[0] == 409  # nothing to cancel yet
        assert department.invites() == []

        status, body = Api("seat-1").post(path, {"kind": "consult", "target": GONGAN})
        assert status == 200 and body["result"].startswith("accepted: consult"), body
        until(lambda: api.get("/operator-calls")["calls"][0]["state"] == "consulting", what="consulting")
        until(department.invites, what="the department to ring")
        # Held meanwhile, the citizen hears the hold music setup made (dialplan/musiconhold.conf).
        until(lambda: asterisk_plays("moh/hold-music.wav"), what="Asterisk playing the hold music")
        time.sleep(2)  # operator and department talk a moment
        status, body = api.post(f"/operator-calls/{call_id}/cancel")
        assert status in (200, 202), body
        assert call.result().succeeded  # the seat hangs up after its 20 s: the call ends

    (row,) = controller.finished_calls(1)
    (step,) = transfers(controller, row["call_id"])
    assert (step["kind"], step["by"], step["outcome"], step["handed_over"]) == ("consult", "api", "cancelled", False)
    assert numbers(department) == [GONGAN] and len(seat.invites()) == 1
    # An ask on a call that ended is refused as such.
    status, body = api.post(f"/operator-calls/{call_id}/cancel")
    assert status == 409 and "already ended" in body["error"]
    assert not asterisk_plays("moh/hold-music.wav")  # the citizen came back off hold: the music stopped


def test_three_way_where_the_operator_leaves_and_citizen_and_department_stay(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone], tmp_path: Path
) -> None:
    department = phones(DEPARTMENTS_PORT, talk_ms=14000)
    codes = seat_scenario(tmp_path / "seat", [(3000, f"*2{GONGAN}#")], talk_ms=5000)  # then the operator hangs up
    seat = phones(SEAT_PORTS[0], scenario=codes)
    controller = start_controller()

    run = place_call("12345", "0", first_key_ms=1000, talk_ms=90000)

    assert run.succeeded, run.stderr
    (row,) = controller.finished_calls(1, timeout=30)
    (step,) = transfers(controller, row["call_id"])
    assert (step["kind"], step["outcome"], step["handed_over"]) == ("three-way", "operator_left", True)
    assert row["hangup_by"] == "callee" and row["talk_seconds"] > 14
    assert numbers(department) == [GONGAN] and len(seat.invites()) == 1
    assert no_refer(department, seat)


def test_a_blind_transfer_to_a_busy_department_comes_back_to_the_queue_first(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone]
) -> None:
    department = phones(DEPARTMENTS_PORT, "phone_busy.xml")
    seat1 = phones(SEAT_PORTS[0], talk_ms=30000)
    seat2 = phones(SEAT_PORTS[1], talk_ms=4000)
    controller = start_controller()
    api = Api()

    with ThreadPoolExecutor(1) as pool:
        call = citizen(pool)
        call_id = api.call_at_operator()
        status, body = api.post(f"/operator-calls/{call_id}/transfer", {"kind": "blind", "target": "gongan"})
        assert status in (200, 202), body
        assert call.result().succeeded

    (row,) = controller.finished_calls(1)
    (step,) = transfers(controller, call_id)
    assert (step["kind"], step["outcome"], step["rang"][0]["status"]) == ("blind", "requeued", "BUSY")
    steps = controller.calllog.steps(call_id)
    assert [s["detail"]["position"] for s in steps if s["name"] == "queue_joined"] == [1, 1]
    # seat-1 is in after-call work once its operator left: seat-2 takes the citizen back.
    assert [s["detail"]["seat"] for s in steps if s["name"] == "queue_left"] == ["seat-1", "seat-2"]
    assert (row["outcome"], row["hangup_by"]) == ("operator", "callee")
    assert numbers(department) == [GONGAN] and len(seat1.invites()) == len(seat2.invites()) == 1


def test_an_emergency_line_joins_three_way_by_its_feature_code(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone], tmp_path: Path
) -> None:
    police = phones(DEPARTMENTS_PORT, talk_ms=12000)  # the departments trunk carries 110 in the lab
    seat = phones(SEAT_PORTS[0], scenario=seat_scenario(tmp_path / "seat", [(3000, "*4110#")], talk_ms=6000))
    controller = start_controller()

    run = place_call("12345", "0", first_key_ms=1000, talk_ms=90000)

    assert run.succeeded, run.stderr
    (row,) = controller.finished_calls(1, timeout=30)
    (step,) = transfers(controller, row["call_id"])
    assert (step["kind"], step["target"], step["number"], step["emergency"]) == ("three-way", "police", "110", True)
    assert step["outcome"] == "operator_left" and step["by"] == "dtmf"
    assert numbers(police) == ["110"] and len(seat.invites()) == 1


def test_feature_codes_typed_by_the_citizen_do_nothing(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone]
) -> None:
    department = phones(DEPARTMENTS_PORT, talk_ms=10000)
    seat = phones(SEAT_PORTS[0], talk_ms=14000)
    controller = start_controller()

    run = place_call("12345", f"0,,,,,*1{GONGAN}#,,*5#,*3{GONGAN}#", first_key_ms=1000, gap_ms=300, talk_ms=90000)

    assert run.succeeded, run.stderr
    (row,) = controller.finished_calls(1, timeout=30)
    assert transfers(controller, row["call_id"]) == [] and not controller.saw("transfer_started")
    assert department.invites() == [] and len(seat.invites()) == 1
    assert (row["outcome"], row["hangup_by"]) == ("operator", "callee")


def test_a_paused_seat_is_never_offered_a_call_and_stays_paused_across_a_restart(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone]
) -> None:
    seat1 = phones(SEAT_PORTS[0], talk_ms=2000)
    seat2 = phones(SEAT_PORTS[1], talk_ms=2000)
    controller = start_controller()
    operator1 = Api("seat-1")

    assert operator1.post("/seats/seat-1/state", {"state": "paused"})[0] == 400  # a pause needs a reason
    assert operator1.post("/seats/seat-2/state", {"state": "signed_out"})[0] == 403  # not their seat
    assert Api().post("/seats/seat-9/state", {"state": "ready"})[0] == 404
    status, body = operator1.post("/seats/seat-1/state", {"state": "paused", "reason": "午餐"})
    assert status == 200 and (body["state"], body["reason"], body["pending"]) == ("paused", "午餐", False)
    assert [(s["seat"], s["state"]) for s in Api().get("/seats")["seats"]] == [
        ("seat-1", "paused"),
        ("seat-2", "ready"),
    ]

    for n in range(2):  # one after the other: the second waits out seat-2's after-call work
        run = place_call("12345", "0", caller=f"1390000000{n}", first_key_ms=1000, talk_ms=40000)
        assert run.succeeded, run.stderr
    rows = controller.finished_calls(2)
    assert [r["outcome"] for r in rows] == ["operator", "operator"]
    assert seat1.invites() == [] and len(seat2.invites()) == 2

    events = seat_events(controller.calllog)
    assert ("seat-1", "paused", "午餐", "api") in [(e["seat"], e["state"], e["reason"], e["by"]) for e in events]
    assert [e["state"] for e in events if e["seat"] == "seat-2"][:2] == ["wrap_up", "ready"]
    with urllib.request.urlopen("http://127.0.0.1:9345/metrics", timeout=5) as resp:
        exposition = resp.read().decode()
    assert 'hotline_seats{state="paused"} 1.0' in exposition

    # A restarted controller puts seat-1 back as its operator left it: still paused, for the same reason.
    controller.stop()
    again = start_controller()
    assert [(s["seat"], s["state"], s["reason"]) for s in Api().get("/seats")["seats"]] == [
        ("seat-1", "paused", "午餐"),
        ("seat-2", "ready", ""),
    ]
    assert again.saw("seat_states_restored", seats={"seat-1": "paused"})
