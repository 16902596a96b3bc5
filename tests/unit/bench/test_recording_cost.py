"""The recording-cost run's parts that need no lab: its routes, its speaking citizen, its arithmetic and table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.recording_cost import difference, markdown, routes_with_recording, speaking_citizen
from ivr.routing import routes


def test_the_on_run_records_every_answered_call_into_the_runs_own_directory(tmp_path: Path) -> None:
    table = routes.load(routes_with_recording(tmp_path / "routes.yaml", "/var/spool/asterisk/monitor/bench-x"))
    assert table.recording.records("merge", "市公安局") and table.recording.records("operators")
    assert table.recording.directory == "/var/spool/asterisk/monitor/bench-x"


def test_the_citizen_speaks_after_its_key_until_it_hangs_up(tmp_path: Path) -> None:
    text = speaking_citizen(tmp_path, tmp_path / "speech.alaw").read_text(encoding="utf-8")
    key, speak, bye = text.index("DTMF_PCAP"), text.index('rtp_stream="'), text.index('<pause milliseconds="TALK_MS"/>')
    assert key < speak < bye and f'rtp_stream="{tmp_path / "speech.alaw"},-1,8"' in text


def run(cpu_ms: float, recordings: int, recorded_seconds: float) -> dict[str, Any]:
    step = {"rate": 5, "placed": 300, "ok": 300, "failed_total": 0}
    return {
        "step": step,
        "connected": 300,
        "talk_seconds_mean": 9.0,
        "recordings": recordings,
        "recorded_seconds": recorded_seconds,
        "asterisk_cpu_ms_per_call": cpu_ms,
        "controller_cpu_ms_per_call": 20.0,
    }


def test_the_difference_is_per_call_and_per_recorded_minute() -> None:
    # 300 calls, 6 ms more each = 1.8 s of CPU over 300 × 6 s = 30 recorded minutes: 60 ms per minute.
    diff = difference(run(40.0, 0, 0.0), run(46.0, 300, 1800.0))
    assert diff == {"asterisk_cpu_ms_per_call": 6.0, "asterisk_cpu_ms_per_recorded_minute": 60.0}


def test_the_table_shows_both_runs_and_says_when_the_box_was_not_quiet() -> None:
    report: dict[str, Any] = {
        "started": "s",
        "finished": "f",
        "machine": {"cpu": "x", "cores": 2, "loadavg_at_start": ["0.1", "0.1", "0.1"]},
        "runs": {"off": run(40.0, 0, 0.0), "on": run(46.0, 300, 1800.0)},
        "difference": {"asterisk_cpu_ms_per_call": 6.0, "asterisk_cpu_ms_per_recorded_minute": 60.0},
        "valid": True,
    }
    table = markdown(report)
    assert "| off | 5 | 300 |" in table and "| on | 5 | 300 |" in table
    assert "adds 6.0 ms of Asterisk CPU per call (60.0 ms per recorded talk-minute)" in table
    assert "NOT a valid run" not in table
    assert "NOT a valid run" in markdown({**report, "valid": False, "noisy_steps": ["recording-on@5"]})
