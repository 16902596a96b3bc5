"""The controller's side of the route editors' switches: it takes the call log's notices and staged table
within a second, logs them, exports them, and puts each table that goes live on record."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path

import structlog.testing

from ivr.calllog import open_calllog
from ivr.calllog.editing import end_notice, end_stage, history, stage, start_notice
from ivr.controller.editing import RouteEditing, file_owner
from ivr.metrics import Metrics
from ivr.routing import routes
from ivr.routing.routes import digest_of

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = (ROOT / "routes.yaml").read_text(encoding="utf-8")
EDITED = SHIPPED.replace('"1": {route: gongan}', '"1": {route: sifa}')


def test_notices_and_the_stage_are_taken_from_the_call_log_while_running(tmp_path: Path) -> None:
    log = open_calllog(tmp_path / "calllog.sqlite3")
    log.start()
    metrics = Metrics()
    live = routes.parse(SHIPPED, "routes.yaml")
    editing = RouteEditing(log, metrics, tmp_path / "routes.yaml", clock=lambda: dt.datetime(2026, 11, 24, 10))

    async def scenario() -> None:
        watcher = asyncio.create_task(editing.watch(lambda: live, interval=0.05))
        now = time.time()
        nid = start_notice(
            log,
            prompt="notice-x",
            text="",
            entries=frozenset({"12310"}),
            to_operators=True,
            starts=now,
            ends=now + 60,
            author="duty",
        )
        stage(log, text=EDITED, source="new.yaml", share=25, author="li", at=now)
        await asyncio.sleep(0.5)
        assert [n.id for n in editing.notices_for(live, "12310")] == [f"cmd-{nid}"]
        assert editing.notices_for(live, "12345") == []
        assert metrics.registry.get_sample_value("hotline_notices_active", {"mode": "to_operators"}) == 1
        assert editing.stage is not None and (editing.stage.table.digest, editing.stage.share) == (
            digest_of(EDITED),
            25,
        )
        assert metrics.registry.get_sample_value("hotline_routes_staged_share_percent") == 25

        end_notice(log, nid, "duty", time.time())
        end_stage(log, "dropped", "li", time.time())
        await asyncio.sleep(0.5)
        assert editing.notices_for(live, "12310") == [] and editing.stage is None
        assert metrics.registry.get_sample_value("hotline_notices_active", {"mode": "to_operators"}) == 0
        assert metrics.registry.get_sample_value("hotline_routes_staged_share_percent") == 0
        watcher.cancel()

    asyncio.run(scenario())
    log.close()


def test_a_table_going_live_is_recorded_with_the_files_owner(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(SHIPPED, encoding="utf-8")
    log = open_calllog(tmp_path / "calllog.sqlite3")
    log.start()
    editing = RouteEditing(log, Metrics(), path, clock=dt.datetime.now)
    editing.went_live(routes.load(path), "start")
    editing.went_live(routes.load(path), "sighup")  # the same table again: one record
    log.close()
    (row,) = history(log)
    assert (row["digest"], row["how"], row["author"], row["source"]) == (
        digest_of(SHIPPED),
        "start",
        file_owner(path),
        str(path),
    )
    assert file_owner(path) != ""


def test_a_notice_text_in_routes_yaml_is_rendered_when_its_table_goes_live(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(
        SHIPPED + "notices:\n  - {id: move, text: 市民服务中心已迁至新址。,\n"
        "     from: 2026-12-01T00:00, until: 2026-12-08T00:00}\n",
        encoding="utf-8",
    )
    state, asterisk = tmp_path / "sounds", tmp_path / "asterisk-sounds"
    state.mkdir()
    asterisk.mkdir()
    log = open_calllog(tmp_path / "calllog.sqlite3")
    log.start()
    editing = RouteEditing(log, Metrics(), path, clock=dt.datetime.now, sound_dirs=[state, asterisk])
    editing.went_live(routes.load(path), "sighup")
    log.close()
    rendered, copied = state / "notice-move.wav", asterisk / "notice-move.wav"
    deadline = time.monotonic() + 30
    while not (copied.exists() and copied.read_bytes() == rendered.read_bytes()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert copied.read_bytes() == rendered.read_bytes()  # into the running Asterisk too
    assert rendered.stat().st_size > 16000  # about a second of 8 kHz speech at least


def test_a_dated_notice_of_routes_yaml_is_logged_when_it_starts_and_ends(tmp_path: Path) -> None:
    table = routes.parse(
        SHIPPED + "notices:\n  - {id: move, prompt: notice-move, from: 2026-11-24T09:00, until: 2026-11-24T11:00}\n",
        "routes.yaml",
    )
    clock = [dt.datetime(2026, 11, 24, 8, 59)]
    metrics = Metrics()
    editing = RouteEditing(open_calllog(tmp_path / "c.sqlite3"), metrics, tmp_path / "routes.yaml", lambda: clock[0])
    with structlog.testing.capture_logs() as logged:
        for at in (8, 10, 10, 12):
            clock[0] = dt.datetime(2026, 11, 24, at, 0)
            editing._take_notices([], table)
            if at == 10:
                assert metrics.registry.get_sample_value("hotline_notices_active", {"mode": "announce"}) == 1
    assert [(e["event"], e["notice"]) for e in logged] == [("notice_live", "move"), ("notice_over", "move")]
    assert metrics.registry.get_sample_value("hotline_notices_active", {"mode": "announce"}) == 0
