"""Caller-number privacy (PIPL): after a run of real calls, no artifact holds a full caller number.

Every place the product writes is searched for the test callers' numbers: the controller's log,
/metrics, the assessment report in all three formats, the CLI listings, the webhook sent to a
partner, Asterisk's own logs, and every column of the call log but one — the callback list's
`caller_number`, which an operator needs in order to call back, in a file only its owner reads.

Not searched, on purpose: the SIP messages the SIPp phones received. Passing the caller's
number to the department that takes the call is the service itself (like any phone call).
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import stat
import subprocess
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lab.citizen import place_call
from tests.integration.conftest import (
    ASTERISK_LOGS,
    DEPARTMENTS_PORT,
    PARTNERS_PORT,
    REPO,
    SEAT_PORTS,
    STATE,
    Controller,
    Partner,
    Phone,
)

pytestmark = pytest.mark.integration

CALLERS = {
    "connected": "13912340001",
    "abandoned": "13912340002",
    "operator": "13912340003",
    "handed_off": "13912340004",
}


def hotline(*args: str) -> str:
    done = subprocess.run(
        [str(REPO / ".venv/bin/hotline"), *args], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def leaks(text: str) -> list[str]:
    return [n for n in CALLERS.values() if n in text]


def test_no_artifact_of_a_run_holds_a_full_caller_number_except_the_protected_callback_list(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone], partner_webhook: Partner, tmp_path: Path
) -> None:
    phones(DEPARTMENTS_PORT, talk_ms=1000)
    phones(PARTNERS_PORT, talk_ms=1000)
    for port in SEAT_PORTS:
        phones(port, talk_ms=1000)
    controller = start_controller()
    logs_before = {p: p.stat().st_size for p in ASTERISK_LOGS.glob("*") if p.is_file()}

    flows = [
        ("12345", "1", CALLERS["connected"], 8000),
        ("12345", "", CALLERS["abandoned"], 2000),
        ("12345", "0", CALLERS["operator"], 8000),
        ("12315", "", CALLERS["handed_off"], 6000),
    ]
    with ThreadPoolExecutor(len(flows)) as pool:
        runs = [
            pool.submit(place_call, to, keys, caller=caller, talk_ms=talk, local_port=5071 + i)
            for i, (to, keys, caller, talk) in enumerate(flows)
        ]
        assert all(r.result().succeeded for r in runs)
    rows = controller.finished_calls(len(flows), timeout=30)
    assert {r["outcome"] for r in rows} >= {"connected", "abandoned", "operator"}

    with urllib.request.urlopen("http://127.0.0.1:9345/metrics", timeout=5) as resp:
        metrics = resp.read().decode()
    calllog = str(controller.calllog.path)
    today = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date().isoformat()
    artifacts: dict[str, str] = {
        "controller log": controller.log(),
        "/metrics": metrics,
        "hotline calls": hotline("calls", "--calllog", calllog),
        "hotline tickets": hotline("tickets", "--calllog", calllog),
        "hotline callbacks list": hotline("callbacks", "list", "--all", "--calllog", calllog),
        "webhooks": "\n".join(repr(h["body"]) for h in partner_webhook.received),
        "Asterisk console log": (STATE / "asterisk.console.log").read_text(errors="replace"),
    }
    for fmt in ("json", "csv", "html"):
        out = tmp_path / f"report.{fmt}"
        hotline("report", "--from", today, "--to", today, "--calllog", calllog, "--out", str(out))
        artifacts[f"report.{fmt}"] = out.read_text(encoding="utf-8-sig")
    for path, size in logs_before.items():  # what Asterisk logged during this run
        with path.open("rb") as f:
            f.seek(size)
            artifacts[f"Asterisk {path.name}"] = f.read().decode(errors="replace")

    assert partner_webhook.received, "the hand-off webhook was sent"
    assert {name: leaks(text) for name, text in artifacts.items() if leaks(text)} == {}
    # The masked form is what people see instead.
    assert "139****0001" in artifacts["report.json"] or "139****0001" in artifacts["hotline calls"]

    # The call log: masked form and keyed hash everywhere; the full number only where it is dialled.
    db = sqlite3.connect(calllog)
    found = []
    for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
        columns = [c[1] for c in db.execute(f"PRAGMA table_info({table})")]
        for column in columns:
            for (value,) in db.execute(f'SELECT "{column}" FROM "{table}"'):
                if isinstance(value, str) and leaks(value):
                    found.append(f"{table}.{column}")
    db.close()
    # The two places a number must be kept to dial it: the callback list, and a ticket's contact for
    # the 回访 after its close (erased when the follow-up ends).
    assert set(found) == {"callbacks.caller_number", "ticket_contacts.caller_number"}, found
    assert stat.S_IMODE(os.stat(calllog).st_mode) == 0o600

    # The search would have found a leak: revealing the callback list prints the number.
    assert CALLERS["abandoned"] in hotline("callbacks", "list", "--reveal", "--calllog", calllog)
