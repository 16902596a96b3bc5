"""The controller's import of refused and fallback calls (ivr/calllog/evidence.py) into the call log and /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from pathlib import Path

import structlog

from ivr.ari.client import AriSettings
from ivr.controller.app import Controller
from ivr.routing import routes
from ivr.settings import Settings

ROOT = Path(__file__).resolve().parents[3]


def controller(tmp_path: Path, events: Path) -> Controller:
    settings = Settings(
        ari=AriSettings("http://127.0.0.1:9", "hotline", "unused", "hotline"),
        routes_path=ROOT / "routes.yaml",
        calllog_path=tmp_path / "calllog.sqlite3",
        caller_hash_key=b"k" * 32,
        asterisk_events=events,
    )
    return Controller(settings, routes.load(ROOT / "routes.yaml"))


async def run_for(ctl: Controller, seconds: float) -> None:
    task = asyncio.create_task(ctl._import_asterisk_calls(interval=0.01))
    await asyncio.sleep(seconds)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_an_unreadable_events_file_is_said_once_not_every_few_seconds(tmp_path: Path) -> None:
    bad = tmp_path / "hotline-events.db"
    bad.write_bytes(b"not sqlite" * 200)
    ctl = controller(tmp_path, bad)
    ctl.calllog.start()
    try:
        with structlog.testing.capture_logs() as logs:
            task = asyncio.create_task(ctl._import_asterisk_calls(interval=0.01))
            await asyncio.sleep(0.2)
            failed = [e for e in logs if e["event"] == "asterisk_calls_import_failed"]
            assert len(failed) == 1 and str(bad) in failed[0]["source"]
            bad.unlink()  # no file: nothing written yet, which is fine
            await asyncio.sleep(0.1)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        said = [e["event"] for e in logs if e["event"].startswith("asterisk_calls_import")]
        assert said == ["asterisk_calls_import_failed", "asterisk_calls_import_recovered"]
    finally:
        ctl.calllog.close()


async def test_imported_calls_are_counted_in_the_metrics_once(tmp_path: Path) -> None:
    events = tmp_path / "hotline-events.db"
    with sqlite3.connect(events) as db:
        db.execute(
            "CREATE TABLE hotline_events (AcctId INTEGER PRIMARY KEY, eventtime,userdeftype,eventextra,uniqueid)"
        )
    ctl = controller(tmp_path, events)
    ctl.calllog.start()
    try:
        await run_for(ctl, 0.05)  # an empty call log: counts from now on
        with sqlite3.connect(events) as db:
            db.execute(
                "INSERT INTO hotline_events (eventtime, userdeftype, eventextra, uniqueid) VALUES (?, ?, ?, ?)",
                (f"{time.time():.6f}", "hotline_fallback", '{"extra":"entry=12310"}', "1796439980.7"),
            )
        await run_for(ctl, 0.2)
        assert b'hotline_calls_total{entry="12310",outcome="fallback"} 1.0' in ctl.metrics.exposition()
    finally:
        ctl.calllog.close()
