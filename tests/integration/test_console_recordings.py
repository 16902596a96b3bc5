"""The supervisor's recordings and messages pages in real headless Chromium, on real recorded calls.

A citizen leaves a message (留言) after hours; then, with recording on, a citizen talks with the
department (both SIPp parties speak, Asterisk's MixMonitor records). The supervisor logs in: the
recording's row is on the recordings page with the caller masked; its download, fetched by the page's
own session, carries the SHA-256 the call log kept and bytes that hash to it; on the messages page
"mark handled" takes the message off the open list and the full list says who handled it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import WebDriverException

from ivr.console.accounts import AccountStore
from lab.citizen import place_call
from tests.integration.conftest import AFTER_HOURS, DEPARTMENTS_PORT, Controller, Phone, until
from tests.integration.test_console import By, browser  # noqa: F401  (the fixture: real headless Chromium)
from tests.integration.test_recording import CITIZEN, SPEAKS_AFTER_BRIDGE, kept, recording_routes, speaking_phone

pytestmark = pytest.mark.integration

ROWS = "return Array.from(document.querySelectorAll('#rows tbody tr'), tr => tr.innerText)"

FETCH = """
const [url, done] = arguments;
fetch(url).then(async r => {
  const body = await r.arrayBuffer();
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', body));
  done({status: r.status, sha256: r.headers.get('X-Content-SHA256'),
        disposition: r.headers.get('Content-Disposition'), bytes: body.byteLength,
        hashed: Array.from(digest).map(b => b.toString(16).padStart(2, '0')).join('')});
}).catch(e => done({error: String(e)}));
"""


def rows(browser: Any) -> list[str]:  # noqa: F811
    """The table's rows as text, read in one script: the page re-renders its table on live updates and is
    replaced when a form posts, so an element found a moment earlier can be stale when its text is asked."""
    for _ in range(50):
        try:
            texts: list[str] = browser.execute_script(ROWS)
            return texts
        except WebDriverException:  # the page is being replaced: ask the next one
            time.sleep(0.1)
    texts = browser.execute_script(ROWS)
    return texts


def test_a_supervisor_downloads_a_checked_recording_and_marks_a_message_handled(
    start_controller: Callable[..., Controller],
    phones: Callable[..., Phone],
    browser: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    accounts = tmp_path / "console-accounts.json"
    AccountStore(accounts, rounds=4).add("zhang", "supervisor", "zhang's password")
    env = {"HOTLINE_CONSOLE_ACCOUNTS": str(accounts)}
    phones(DEPARTMENTS_PORT, scenario=speaking_phone(tmp_path), talk_ms=8000)

    night = start_controller(clock=AFTER_HOURS, env=env)
    left = place_call("12345", "1" + "," * 14 + "~#", caller=CITIZEN, talk_ms=20000)
    assert left.succeeded, left.stderr
    (message_call,) = night.finished_calls()
    assert message_call["outcome"] == "message"
    (message,) = until(lambda: night.calllog.recordings("kind = 'message'"), timeout=20, what="the message kept")
    night.stop()

    day = start_controller(recording_routes(tmp_path), env=env)
    call = place_call("12345", SPEAKS_AFTER_BRIDGE, caller=CITIZEN, talk_ms=30000)
    assert call.succeeded, call.stderr
    (rec,) = kept(day)
    address = day.env.get("HOTLINE_METRICS_ADDR", "127.0.0.1:9345")
    base = f"http://{address}/console"

    browser.get(f"{base}/login")
    browser.find_element(By.ID, "name").send_keys("zhang")
    browser.find_element(By.ID, "password").send_keys("zhang's password")
    browser.find_element(By.ID, "login").click()
    until(lambda: "/console/supervisor" in browser.current_url, what="the supervisor page after login")

    browser.get(f"{base}/recordings")
    (row,) = [r for r in rows(browser) if r.startswith(str(rec["name"]))]
    assert "市公安局" in row and "139****5678" in row and CITIZEN not in browser.page_source
    download = browser.find_element(By.CSS_SELECTOR, f'button[data-name="{rec["name"]}"][data-how="download"]')
    assert download.is_displayed()
    # The download as the page's button asks it (a reason, download=1), fetched in the page's session.
    url = f"recordings/{rec['name']}/audio?reason=test%20%E6%8A%BD%E6%A3%80&download=1"
    got = browser.execute_async_script(FETCH, url)
    assert got["status"] == 200, got
    assert got["sha256"] == rec["sha256"] == got["hashed"], got
    assert got["bytes"] == rec["bytes"] and got["disposition"].startswith("attachment"), got
    assert browser.execute_async_script(FETCH, f"recordings/{rec['name']}/audio")["status"] == 400  # no reason

    browser.get(f"{base}/messages")
    (open_row,) = [r for r in rows(browser) if r.startswith(str(message["name"]))]
    assert "139****5678" in open_row
    browser.find_element(By.CSS_SELECTOR, f'form[action="messages/{message["name"]}/handled"] button').click()
    until(lambda: not [r for r in rows(browser) if r.startswith(str(message["name"]))], what="the message off the list")
    browser.get(f"{base}/messages?all=1")
    (done_row,) = [r for r in rows(browser) if r.startswith(str(message["name"]))]
    assert "by console:zhang" in done_row
    (handled,) = day.calllog.recordings("name = ?", (message["name"],))
    assert handled["handled_by"] == "console:zhang" and handled["handled_at"]
