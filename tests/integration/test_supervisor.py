"""A supervisor listens in on, then barges into, a real call at an operator's seat (ARI snoop).

A SIPp citizen presses 0 and seat-1's SIPp phone answers. The supervisor (console account zhang, whose
phone is seat-2's, kept signed out) asks "listen" on the supervisor page's route: seat-2's phone gets
the INVITE and Asterisk holds a Snoop channel on the operator's leg; then "barge" swaps the snoop with the
phone kept up. When seat-1 hangs up, the call ends, the snoop ends with the operator's leg and the
supervisor's phone is hung up: the conftest checks 0 channels and 0 bridges left (the snoop's too). The
console audit holds each ask (who, which call, mode, when) and how it ended; the call has "supervised" steps.
Refusals on the real controller: an operator's session (403), a seat with no call, a call that ended (409).
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from ivr.console.accounts import AccountStore
from ivr.console.audit import audit_entries
from ivr.operators.desk import seat_token
from lab.citizen import place_call
from tests.integration.conftest import SEAT_PORTS, STATE, Ari, Controller, Phone, until

pytestmark = pytest.mark.integration

KEY = (STATE / "caller-hash.key").read_text(encoding="utf-8").strip().encode()


class Browser:
    """One console session over plain HTTP: cookies, the login form's token, the page's CSRF token."""

    def __init__(self, address: str, name: str, password: str, page: str) -> None:
        self.base = f"http://{address}/console"
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        form = self.opener.open(f"{self.base}/login", timeout=10).read().decode()
        token = re.search(r'name="csrf" value="([^"]+)"', form)
        assert token is not None
        data = urllib.parse.urlencode({"csrf": token[1], "name": name, "password": password}).encode()
        self.opener.open(f"{self.base}/login", data, timeout=10).read()
        html = self.opener.open(f"{self.base}/{page}", timeout=10).read().decode()
        csrf = re.search(r'<meta name="csrf" content="([^"]+)">', html)
        assert csrf is not None, html[:300]
        self.csrf = csrf[1]

    def post(self, path: str, body: dict[str, str]) -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": "application/json", "X-CSRF-Token": self.csrf}
        req = urllib.request.Request(f"{self.base}{path}", json.dumps(body).encode(), headers, method="POST")
        try:
            with self.opener.open(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")


def operators_api(method: str, path: str, body: Any = None) -> dict[str, Any]:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {seat_token(KEY, '*')}"}
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:9345/api/v1{path}", data, headers, method=method)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return dict(json.loads(resp.read()))


def snoops(ari: Ari) -> list[str]:
    return [c["name"] for c in ari.channels() if c["name"].startswith("Snoop/")]


def test_a_supervisor_listens_in_then_barges_and_nothing_is_left_when_the_call_ends(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone], asterisk: Ari, tmp_path: Path
) -> None:
    accounts = tmp_path / "console-accounts.json"
    store = AccountStore(accounts, rounds=4)
    store.add("zhang", "supervisor", "zhang's password", seat="seat-2")
    store.add("li", "operator", "li's password", seat="seat-1")
    seat = phones(SEAT_PORTS[0], talk_ms=20000)  # the operator hangs up after 20 s: the call ends
    ear = phones(SEAT_PORTS[1], talk_ms=120000)  # the supervisor's phone stays on until we hang it up
    controller = start_controller(env={"HOTLINE_CONSOLE_ACCOUNTS": str(accounts)})
    address = controller.env.get("HOTLINE_METRICS_ADDR", "127.0.0.1:9345")
    operators_api("POST", "/seats/seat-2/state", {"state": "signed_out"})
    supervisor = Browser(address, "zhang", "zhang's password", "supervisor")
    operator = Browser(address, "li", "li's password", "")

    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(place_call, "12345", "0", first_key_ms=1000, talk_ms=90000)
        calls = until(lambda: operators_api("GET", "/operator-calls")["calls"], timeout=30, what="a call at seat-1")
        call_id = calls[0]["call_id"]

        assert operator.post("/supervisor/seats/seat-1/listen", {"call_id": call_id})[0] == 403
        status, body = supervisor.post("/supervisor/seats/seat-2/listen", {})
        assert status == 409 and "seat seat-2 has no call" in body["error"]
        assert ear.invites() == []

        status, body = supervisor.post("/supervisor/seats/seat-1/listen", {"call_id": call_id})
        assert (status, body["call_id"], body["mode"]) == (200, call_id, "listen"), body
        until(lambda: len(ear.invites()) == 1, timeout=20, what="the supervisor's phone (seat-2) to ring")
        until(lambda: controller.saw("supervision_connected", mode="listen"), timeout=20, what="listening")
        assert len(snoops(asterisk)) == 1

        status, body = supervisor.post("/supervisor/seats/seat-1/barge", {"call_id": call_id})
        assert status == 200, body
        until(lambda: controller.saw("supervision_connected", mode="barge"), timeout=20, what="barging in")
        until(lambda: len(snoops(asterisk)) == 1, timeout=5, what="the listen's snoop swapped for the barge's")
        assert len(ear.invites()) == 1  # the same phone call: no second ring

        assert call.result().succeeded, call.result().stderr

    (row,) = controller.finished_calls(1, timeout=30)
    assert row["call_id"] == call_id and row["outcome"] == "operator"
    until(lambda: controller.saw("supervision_ended", outcome="call_left"), timeout=15, what="the supervision's end")
    supervised = [s["detail"] for s in controller.calllog.steps(call_id) if s["name"] == "supervised"]
    assert [(s["supervisor"], s["mode"], s["phone_seat"]) for s in supervised] == [
        ("zhang", "listen", "seat-2"),
        ("zhang", "barge", "seat-2"),
    ]

    status, body = supervisor.post("/supervisor/seats/seat-1/listen", {"call_id": call_id})
    assert status == 409 and "has already ended" in body["error"]

    def supervision_rows() -> list[dict[str, Any]]:
        rows = [e for e in audit_entries(controller.calllog) if e["action"].startswith("supervise")]
        return rows if len(rows) >= 6 else []  # 3 refusals, 2 asks, 1 end

    audit = until(supervision_rows, timeout=10, what="the supervision's audit rows")
    rows = [(e["account"], e["action"], e["target"], e["result"]) for e in audit]
    assert ("zhang", "supervise", call_id, "ok") in rows
    assert ("zhang", "supervise_end", call_id, "call_left") in rows
    oks = [e for e in audit if e["action"] == "supervise" and e["result"] == "ok"]
    assert [(e["detail"]["mode"], e["detail"]["seat"]) for e in oks] == [("listen", "seat-1"), ("barge", "seat-1")]
    assert all(e["at"] > 0 for e in oks)
    (end,) = [e for e in audit if e["action"] == "supervise_end"]
    assert end["detail"]["modes"] == ["listen", "barge"] and end["detail"]["answered_at"] is not None
    assert ("li", "supervise", "", "refused: needs the supervisor role") in rows
    assert len(seat.invites()) == 1
