"""The route editors' switches on real calls: a notice before the menu, a staged table, history and rollback.

Each command is the real `hotline` CLI on the test controller's call log and routes file, as an editor
would run it beside a running controller; nothing is restarted.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import wave
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ivr import privacy
from ivr.calllog.editing import history
from ivr.routing.routes import digest_of
from ivr.routing.staging import bucket
from ivr.timekeeping import LOCAL_TZ
from lab.citizen import place_call
from tests.integration.conftest import DEPARTMENTS_PORT, REPO, SEAT_PORTS, STATE, Controller, Phone, until

pytestmark = pytest.mark.integration

SHIPPED = (REPO / "routes.yaml").read_text(encoding="utf-8")
TO_SIFA = SHIPPED.replace('"1": {route: gongan}', '"1": {route: sifa}')
ANNOUNCEMENT = "各位市民请注意，受台风影响，今日部分部门服务时间调整。"


def hotline(*args: str) -> subprocess.CompletedProcess[str]:
    """The `hotline` command as an editor runs it (the lab's state: its prompts and running Asterisk)."""
    env = {**os.environ, "HOTLINE_STATE": str(STATE)}
    return subprocess.run(
        [sys.executable, "-m", "ivr", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


def ok(*args: str) -> str:
    done = hotline(*args)
    assert done.returncode == 0, f"hotline {' '.join(args)} exited {done.returncode}:\n{done.stderr}"
    return done.stdout


def later(hours: int = 2) -> str:
    return (dt.datetime.now(LOCAL_TZ) + dt.timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M")


def steps(controller: Controller, call_id: str) -> list[dict[str, object]]:
    return list(controller.calllog.steps(call_id))


def test_a_notice_is_heard_before_the_menu_and_can_send_every_caller_to_the_operators(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone], tmp_path: Path
) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(SHIPPED, encoding="utf-8")
    department = phones(DEPARTMENTS_PORT, talk_ms=1000)
    operators = phones(SEAT_PORTS[0], talk_ms=1000)
    controller = start_controller(routes)
    where = ("--calllog", str(controller.process.calllog), "--routes", str(routes))

    out = ok("notice", "start", "--say", ANNOUNCEMENT, "--entries", "12345", "--until", later(), "--by", "duty", *where)
    assert out.startswith("notice 1 live now until") and "on 12345" in out and "then the menu" in out
    prompt = out.split(": ", 1)[1].split(",")[0]
    # Rendered at once, for the running Asterisk too (not only for its next start).
    asterisk_sounds = Path((STATE / "asterisk-sounds").read_text(encoding="utf-8").strip())
    with wave.open(str(asterisk_sounds / f"{prompt}.wav")) as wav:
        spoken = wav.getnframes() / wav.getframerate()
    assert spoken > 2.0
    until(lambda: controller.saw("notice_live"), what="the controller to take the notice")

    heard = place_call("12345", "1", caller="13912345678", first_key_ms=int(spoken * 1000) + 2500, talk_ms=15000)
    assert heard.succeeded, heard.stderr
    (row,) = controller.finished_calls(1)
    assert (row["unit"], row["outcome"]) == ("市公安局", "connected")  # then the menu, as usual
    names = [s["name"] for s in steps(controller, row["call_id"])]
    assert names[:3] == ["answered", "notice", "menu"]
    notice, menu = steps(controller, row["call_id"])[1:3]
    assert notice["detail"] == {"notice": "cmd-1", "prompt": prompt, "to_operators": False}
    # The menu came only after the whole announcement was played by Asterisk.
    assert float(menu["at"]) - float(notice["at"]) >= spoken - 0.5  # type: ignore[arg-type]

    assert ok("notice", "end", "1", "--by", "duty", "--calllog", str(controller.process.calllog)) == "notice 1 ended\n"
    out = ok("notice", "start", "--say", ANNOUNCEMENT, "--all-to-operators", "--until", later(), *where)
    assert "every caller goes to the operators" in out and "on every entry" in out
    until(lambda: len(controller.events("notice_live")) == 2, what="the second notice")
    assert controller.saw("notice_over")

    sent = place_call("12345", "1", caller="13912345679", first_key_ms=500, talk_ms=15000)
    assert sent.succeeded, sent.stderr
    _, row = controller.finished_calls(2)
    assert (row["decision"], row["reason"], row["outcome"], row["operator_status"]) == (
        "operator",
        "notice",
        "operator",
        "ANSWER",
    )
    names = [s["name"] for s in steps(controller, row["call_id"])]
    assert names[:2] == ["answered", "notice"] and "menu" not in names  # no menu: straight to the operators
    assert len(department.invites()) == 1 and len(operators.invites()) == 1

    listed = ok("notice", "list", "--all", *where)
    assert "to operators" in listed and "ended by duty" in listed


def callers_on_each_side(share: int) -> tuple[str, str]:
    key = (STATE / "caller-hash.key").read_text(encoding="utf-8").strip().encode()
    numbers = [f"1391234{n:04d}" for n in range(200)]
    staged = next(n for n in numbers if bucket(privacy.caller_hash(n, key)) < share)
    live = next(n for n in numbers if bucket(privacy.caller_hash(n, key)) >= share)
    return staged, live


def test_a_staged_table_takes_its_share_of_callers_by_their_hash(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone], tmp_path: Path
) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(SHIPPED, encoding="utf-8")
    new = tmp_path / "new.yaml"
    new.write_text(TO_SIFA, encoding="utf-8")
    department = phones(DEPARTMENTS_PORT, talk_ms=1000)
    controller = start_controller(routes)
    where = ("--calllog", str(controller.process.calllog), "--routes", str(routes))

    broken = tmp_path / "broken.yaml"
    broken.write_text(TO_SIFA.replace('number: "3023804"', 'number: "30238O4"'), encoding="utf-8")
    refused = hotline("routes", "stage", str(broken), "--share", "50", *where)
    assert refused.returncode == 1 and "broken.yaml:" in refused.stderr and "refused" in refused.stderr

    out = ok("routes", "stage", str(new), "--share", "50", "--by", "li", *where)
    assert f"version {digest_of(TO_SIFA)} staged for 50 % of callers" in out
    until(lambda: controller.saw("routes_stage_live"), what="the controller to take the staged table")

    on_staged, on_live = callers_on_each_side(50)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(place_call, "12345", "1", caller=on_staged, talk_ms=15000)
        second = pool.submit(place_call, "12345", "1", caller=on_live, local_port=5071, talk_ms=15000)
        assert first.result().succeeded and second.result().succeeded
    rows = {r["caller_masked"]: r for r in controller.finished_calls(2)}
    staged, live = rows[privacy.mask(on_staged)], rows[privacy.mask(on_live)]
    assert (staged["unit"], staged["target_number"], staged["routes_version"]) == (
        "市司法局",
        "3023804",
        digest_of(TO_SIFA),
    )
    assert (live["unit"], live["target_number"], live["routes_version"]) == ("市公安局", "3372000", digest_of(SHIPPED))
    assert sorted(u.split("@")[0] for u in department.invites()) == ["sip:3023804", "sip:3372000"]

    assert "dropped" in ok("routes", "drop", "--by", "li", "--calllog", str(controller.process.calllog))
    until(lambda: controller.saw("routes_stage_ended"), what="the controller to drop the staged table")
    again = place_call("12345", "1", caller=on_staged, talk_ms=15000)
    assert again.succeeded
    assert controller.finished_calls(3)[-1]["routes_version"] == digest_of(SHIPPED)


def test_every_live_table_is_on_record_and_a_rollback_applies_to_new_calls_only(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone], tmp_path: Path
) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(SHIPPED, encoding="utf-8")
    phones(DEPARTMENTS_PORT, talk_ms=1000)
    controller = start_controller(routes)
    calllog = ("--calllog", str(controller.process.calllog))

    routes.write_text(TO_SIFA, encoding="utf-8")  # an editor saves the file: the watcher reloads it
    until(lambda: controller.saw("routes_reloaded"), what="the edit to go live")

    with ThreadPoolExecutor(1) as pool:
        # Arrives on the edited table, and presses 1 only after the rollback went live.
        early = pool.submit(place_call, "12345", ",,,,,,,,1", caller="13912345678", first_key_ms=200, talk_ms=15000)
        until(lambda: controller.saw("call_arrived"), what="the call to arrive")
        out = ok("routes", "rollback", digest_of(SHIPPED)[:8], "--by", "zhang", *calllog, "--routes", str(routes))
        assert f"rolled back to {digest_of(SHIPPED)}" in out
        until(lambda: len(controller.events("routes_reloaded")) == 2, what="the rollback to go live")
        assert early.result().succeeded

    late = place_call("12345", "1", caller="13912345679", talk_ms=15000)
    assert late.succeeded
    first, second = controller.finished_calls(2)
    assert (first["unit"], first["routes_version"]) == ("市司法局", digest_of(TO_SIFA))  # the table it started with
    assert (second["unit"], second["routes_version"]) == ("市公安局", digest_of(SHIPPED))

    rows = until(lambda: [*history(controller.calllog)][:3] if len(history(controller.calllog)) == 3 else None)
    assert [(r["digest"], r["how"]) for r in rows] == [
        (digest_of(SHIPPED), "file:rollback"),
        (digest_of(TO_SIFA), "file"),
        (digest_of(SHIPPED), "start"),
    ]
    assert rows[0]["author"] == "zhang" and rows[1]["author"] == rows[2]["author"]  # the file's owner
    assert "key path(s) redirected" in rows[1]["summary"] and "key path(s) redirected" in rows[0]["summary"]
    listed = ok("routes", "history", *calllog)
    assert listed.splitlines()[0].split()[2:5] == [digest_of(SHIPPED), "zhang", "file:rollback"]
    assert ok("routes", "show", digest_of(TO_SIFA), *calllog) == TO_SIFA
