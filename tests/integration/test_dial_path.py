"""HOTLINE_DIAL_PATH=dialplan, with real calls: once the menu has decided, Asterisk rings the route's chain
(the generated [hotline-chain], ivr/routing/dialplan.py) and gives the caller back to the controller,
which logs, overflows, tells the ticket number and asks for the rating as on the ARI path."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lab.citizen import place_call
from lab.manager import Asterisk
from tests.integration.conftest import DEPARTMENTS_PORT, PARTNERS_PORT, REPO, SEAT_PORTS, Controller, Phone

pytestmark = pytest.mark.integration

CITIZEN = "13912345678"
DIALPLAN = {"HOTLINE_DIAL_PATH": "dialplan"}


@pytest.fixture
def chains(asterisk: object) -> Iterator[Callable[[Path], Path]]:
    """Render a test's routes as Asterisk's ring chains (what `hotlinectl start-asterisk` does for routes.yaml)."""
    lab = Asterisk()

    def render(routes: Path) -> Path:
        lab.render_ring_chains(routes)
        return routes

    yield render
    lab.render_ring_chains(REPO / "routes.yaml")


def routes_with(tmp_path: Path, old: str, new: str) -> Path:
    text = (REPO / "routes.yaml").read_text(encoding="utf-8")
    assert old in text
    patched = tmp_path / "routes.yaml"
    patched.write_text(text.replace(old, new, 1), encoding="utf-8")
    return patched


GONGAN = 'number: "3372000"\n    mode: merge\n    effective: 2016-07-31\n    trunk: departments\n    ring_seconds: '


def ari_requests() -> dict[str, float]:
    """hotline_ari_requests_total by method and resource, as the controller exports it."""
    with urllib.request.urlopen("http://127.0.0.1:9345/metrics", timeout=5) as resp:
        lines = resp.read().decode().splitlines()
    return {
        line.split("{", 1)[1].split("}", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in lines
        if line.startswith("hotline_ari_requests_total{")
    }


@pytest.mark.parametrize("path", ["ari", "dialplan"])
def test_a_department_answers_and_the_citizen_rates_it_on_either_path(
    path: str, start_controller: Callable[..., Controller], phones: Callable[..., Phone]
) -> None:
    department = phones(DEPARTMENTS_PORT, talk_ms=2000)
    controller = start_controller(env={**DIALPLAN, "HOTLINE_DIAL_PATH": path})
    before = ari_requests()

    # The rating key comes after the ticket number (about 10 s) and its '*' wait (3 s), during the survey.
    call = place_call("12345", "1" + "," * 22 + "2", caller=CITIZEN, talk_ms=20000)

    assert call.succeeded, call.stderr
    assert [uri.split("@")[0] for uri in department.invites()] == ["sip:3372000"]
    (row,) = controller.finished_calls()
    assert (row["unit"], row["target_number"], row["dial_status"]) == ("市公安局", "3372000", "ANSWER")
    assert (row["outcome"], row["hangup_by"], row["satisfaction"]) == ("connected", "callee", 2)
    assert 1.5 <= row["talk_seconds"] <= 8.0  # the department's 2 s
    assert row["started_at"] <= row["answered_at"] <= row["target_answered_at"] <= row["ended_at"]
    assert controller.saw("ticket_told")
    assert controller.saw("ring_chain_started") is (path == "dialplan")
    after = ari_requests()
    per_call = {k: n - before.get(k, 0) for k, n in after.items() if n - before.get(k, 0)}
    print(f"\nARI requests, one answered rated department call, {path} path: {sum(per_call.values()):.0f} {per_call}")
    assert per_call


def test_a_dead_trunk_and_a_busy_line_each_pass_the_caller_down_the_chain(
    start_controller: Callable[..., Controller],
    phones: Callable[..., Phone],
    tmp_path: Path,
    chains: Callable[[Path], Path],
) -> None:
    department = phones(DEPARTMENTS_PORT, "phone_busy.xml")
    backup = phones(PARTNERS_PORT, talk_ms=1500)
    # The unit's own number on a trunk Asterisk cannot use (no such endpoint), then a busy line, then one that answers.
    overflow = '20\n    overflow: [{number: "3372001", trunk: departments}, {number: "3372099", trunk: partners}]\n'
    patched = routes_with(tmp_path, GONGAN + "20\n", GONGAN.replace("departments", "nowhere") + overflow)
    text = patched.read_text(encoding="utf-8")
    trunk = "  departments:\n    endpoint: departments"
    patched.write_text(text.replace(trunk, trunk + "\n  nowhere:\n    endpoint: no-such-trunk", 1), encoding="utf-8")
    controller = start_controller(chains(patched), env=DIALPLAN)

    call = place_call("12345", "1", caller=CITIZEN, talk_ms=20000)

    assert call.succeeded, call.stderr
    assert [u.split("@")[0] for u in department.invites()] == ["sip:3372001"]
    assert [u.split("@")[0] for u in backup.invites()] == ["sip:3372099"]
    (row,) = controller.finished_calls()
    assert (row["dial_status"], row["overflowed"], row["outcome"]) == ("ANSWER", 1, "connected")
    assert row["hangup_by"] == "callee"
    dials = [
        (s["detail"]["leg"], s["detail"]["status"], s["detail"].get("cause"))
        for s in controller.calllog.steps(row["call_id"])
        if s["name"] == "dial"
    ]
    # TRUNK_DOWN as on the ARI path (test_calls), not Dial's CHANUNAVAIL: Asterisk created no channel.
    assert [d[:2] for d in dials] == [("department", "TRUNK_DOWN"), ("overflow", "BUSY"), ("overflow", "ANSWER")]
    assert dials[1][2] == 17  # the busy line's cause, as on the ARI path
    assert controller.saw("ring_chain_started")


def test_a_chain_nobody_answers_ends_in_the_operators_queue(
    start_controller: Callable[..., Controller],
    phones: Callable[..., Phone],
    tmp_path: Path,
    chains: Callable[[Path], Path],
) -> None:
    department = phones(DEPARTMENTS_PORT, "phone_noanswer.xml")
    operators = phones(SEAT_PORTS[0], talk_ms=1500)
    controller = start_controller(chains(routes_with(tmp_path, GONGAN + "20", GONGAN + "5")), env=DIALPLAN)

    call = place_call("12345", "1", caller=CITIZEN, talk_ms=30000)

    assert call.succeeded, call.stderr
    assert len(department.invites()) == 1 and len(operators.invites()) == 1
    (row,) = controller.finished_calls()
    assert (row["dial_status"], row["overflowed"], row["outcome"]) == ("NOANSWER", 1, "operator")
    assert row["operator_status"] == "ANSWER"
    rang = next(s for s in controller.calllog.steps(row["call_id"]) if s["name"] == "dial")
    assert 4.5 <= rang["detail"]["ring_seconds"] <= 12  # its 5 s ring time
    assert controller.saw("ring_chain_started")


def test_the_caller_hanging_up_while_the_department_rings_is_on_record(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone]
) -> None:
    department = phones(DEPARTMENTS_PORT, "phone_noanswer.xml")
    controller = start_controller(env=DIALPLAN)

    call = place_call("12345", "1", caller=CITIZEN, talk_ms=9000)

    assert call.succeeded, call.stderr
    assert len(department.invites()) == 1
    (row,) = controller.finished_calls()
    assert (row["unit"], row["hangup_by"], row["talk_seconds"]) == ("市公安局", "caller", 0)
    assert row["outcome"] == "abandoned"
    assert controller.saw("ring_chain_started")


def test_the_caller_hanging_up_mid_conversation_keeps_the_talk_time(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone]
) -> None:
    phones(DEPARTMENTS_PORT, talk_ms=30000)
    controller = start_controller(env=DIALPLAN)

    call = place_call("12345", "1", caller=CITIZEN, talk_ms=12000)

    assert call.succeeded, call.stderr
    (row,) = controller.finished_calls()
    assert (row["dial_status"], row["outcome"], row["hangup_by"]) == ("ANSWER", "connected", "caller")
    assert 2.0 <= row["talk_seconds"] <= 12.0
    assert row["satisfaction"] is None
    assert controller.saw("ring_chain_started")
