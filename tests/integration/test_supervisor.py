"""A supervisor listens in on, whispers to, then barges into a real call at an operator's seat (ARI snoop).

A SIPp citizen presses 0 and seat-1's SIPp phone answers and speaks (RTP the whole call, as a real phone's).
The supervisor (console account zhang, whose phone is seat-2's, kept signed out) presses "listen" on the
supervisor page in headless Chromium: seat-2's phone gets the INVITE and Asterisk holds a Snoop channel on
the operator's leg; "whisper" and "barge" each swap the snoop with the phone kept up, and the swapped-out
snoop is destroyed at once: exactly one Snoop channel, the one bridged with the phone, after each change.
(Asterisk takes a snoop off a leg only when an audio frame passes on it, asterisk/asterisk#978: with a
silent SIPp seat phone the old snoop stayed listed until the call's end.) When seat-1 hangs up, the call
ends, the snoop ends with the operator's leg and the supervisor's phone is hung up: the conftest checks
0 channels and 0 bridges left. The
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
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from ivr.console.accounts import AccountStore
from ivr.console.audit import audit_entries
from ivr.operators.desk import seat_token
from lab.citizen import place_call
from lab.sipp.speech import speaking
from tests.integration.conftest import REPO, SEAT_PORTS, STATE, Ari, Controller, Phone, until
from tests.integration.test_console import By, browser  # noqa: F401  (the fixture: real headless Chromium)

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
    return [c["id"] for c in ari.channels() if c["name"].startswith("Snoop/")]


def bridged_with(ari: Ari, channel: str) -> list[str]:
    """The other channels of the bridge `channel` is in."""
    for bridge in ari.bridges():
        if channel in bridge["channels"]:
            return [c for c in bridge["channels"] if c != channel]
    return []


def test_a_supervisor_listens_in_whispers_then_barges_and_nothing_is_left_when_the_call_ends(
    start_controller: Callable[..., Controller],
    phones: Callable[..., Phone],
    asterisk: Ari,
    browser: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    accounts = tmp_path / "console-accounts.json"
    store = AccountStore(accounts, rounds=4)
    store.add("zhang", "supervisor", "zhang's password", seat="seat-2")
    store.add("li", "operator", "li's password", seat="seat-1")
    speaks = speaking(REPO / "lab/sipp/phone_answer.xml", tmp_path / "phone_speaks.xml", tmp_path / "speech.alaw")
    seat = phones(SEAT_PORTS[0], scenario=speaks, talk_ms=25000)  # the operator hangs up after 25 s: the call ends
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

        # The supervisor page's button, in a real browser.
        browser.get(f"http://{address}/console/login")
        browser.find_element(By.ID, "name").send_keys("zhang")
        browser.find_element(By.ID, "password").send_keys("zhang's password")
        browser.find_element(By.ID, "login").click()
        listen = until(
            lambda: browser.find_elements(By.CSS_SELECTOR, "#seats tbody tr:first-child button.supervise-listen"),
            timeout=10,
            what="seat-1's listen button on the supervisor page",
        )
        listen[0].click()
        until(lambda: "your phone rings" in browser.find_element(By.ID, "said").text, timeout=10, what="the ask")
        until(lambda: len(ear.invites()) == 1, timeout=20, what="the supervisor's phone (seat-2) to ring")
        until(lambda: controller.saw("supervision_connected", mode="listen"), timeout=20, what="listening")
        (listening,) = snoops(asterisk)
        phone_leg = [
            c["id"] for c in asterisk.channels() if c["id"].startswith("sup-") and c["name"].startswith("PJSIP/")
        ]
        assert bridged_with(asterisk, listening) == phone_leg

        for mode in ("whisper", "barge"):
            status, body = supervisor.post(f"/supervisor/seats/seat-1/{mode}", {"call_id": call_id})
            assert status == 200, body
            until(partial(controller.saw, "supervision_connected", mode=mode), timeout=20, what=mode)
            swapped = controller.events("supervision_snoop_swapped")[-1]
            assert swapped["gone"] is True, swapped  # the old snoop destroyed, not merely out of the bridge
            (snoop,) = snoops(asterisk)
            assert snoop == swapped["new"] and bridged_with(asterisk, snoop) == phone_leg
        assert len(ear.invites()) == 1  # the same phone call throughout: no second ring

        assert call.result().succeeded, call.result().stderr

    (row,) = controller.finished_calls(1, timeout=30)
    assert row["call_id"] == call_id and row["outcome"] == "operator"
    until(lambda: controller.saw("supervision_ended", outcome="call_left"), timeout=15, what="the supervision's end")
    supervised = [s["detail"] for s in controller.calllog.steps(call_id) if s["name"] == "supervised"]
    assert [(s["supervisor"], s["mode"], s["phone_seat"]) for s in supervised] == [
        ("zhang", "listen", "seat-2"),
        ("zhang", "whisper", "seat-2"),
        ("zhang", "barge", "seat-2"),
    ]

    status, body = supervisor.post("/supervisor/seats/seat-1/listen", {"call_id": call_id})
    assert status == 409 and "has already ended" in body["error"]

    def supervision_rows() -> list[dict[str, Any]]:
        rows = [e for e in audit_entries(controller.calllog) if e["action"].startswith("supervise")]
        return rows if len(rows) >= 7 else []  # 3 refusals, 3 asks, 1 end

    audit = until(supervision_rows, timeout=10, what="the supervision's audit rows")
    rows = [(e["account"], e["action"], e["target"], e["result"]) for e in audit]
    assert ("zhang", "supervise", call_id, "ok") in rows
    assert ("zhang", "supervise_end", call_id, "call_left") in rows
    oks = [e for e in audit if e["action"] == "supervise" and e["result"] == "ok"]
    assert [(e["detail"]["mode"], e["detail"]["seat"]) for e in oks] == [
        ("listen", "seat-1"),
        ("whisper", "seat-1"),
        ("barge", "seat-1"),
    ]
    assert all(e["at"] > 0 for e in oks)
    (end,) = [e for e in audit if e["action"] == "supervise_end"]
    assert end["detail"]["modes"] == ["listen", "whisper", "barge"] and end["detail"]["answered_at"] is not None
    assert ("li", "supervise", "", "refused: needs the supervisor role") in rows
    assert {e["address"] for e in oks} == {"127.0.0.1"}  # the browser's ask and the script's, from where
    assert len(seat.invites()) == 1
