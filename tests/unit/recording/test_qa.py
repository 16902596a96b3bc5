"""录音抽检: the sample is random but reproducible with its seed; score forms are checked and stored."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ivr.calllog import open_calllog
from ivr.calllog.records import CallRecord
from ivr.cli import main
from ivr.errors import ConfigError
from ivr.recording import catalog
from ivr.recording.qa import load_form, sample
from ivr.recording.store import RecordingKept
from ivr.tickets import from_epoch

ROOT = Path(__file__).resolve().parents[3]


def rows(units: int, per_unit: int) -> list[dict[str, object]]:
    return [
        {"name": f"u{u}-c{c}-1", "call_id": f"u{u}-c{c}", "unit": f"unit-{u}", "outcome": "connected", "party": ""}
        for u in range(units)
        for c in range(per_unit)
    ] + [
        {"name": f"s{s}-c{c}-1", "call_id": f"s{s}-c{c}", "unit": "", "outcome": "operator", "party": f"seat-{s}"}
        for s in range(2)
        for c in range(per_unit)
    ]


def test_the_same_seed_draws_the_same_sample_and_every_group_gets_its_share() -> None:
    calls = rows(3, 10)
    first = [r["name"] for r in sample(calls, 2, 3, seed=7)]
    assert first == [r["name"] for r in sample(list(reversed(calls)), 2, 3, seed=7)]
    assert first != [r["name"] for r in sample(calls, 2, 3, seed=8)]
    assert len(first) == 3 * 2 + 2 * 3
    assert sum(1 for n in first if n.startswith("u0-")) == 2 and sum(1 for n in first if n.startswith("s1-")) == 3
    assert len(sample(rows(1, 1), 5, 5, seed=1)) == 3  # a small group gives what it has


def test_the_shipped_form_loads_and_a_wrong_one_says_where(tmp_path: Path) -> None:
    form = load_form(ROOT / "qa.yaml")
    assert sum(c.max for c in form) == 100 and form[0].id == "greeting"
    bad = tmp_path / "qa.yaml"
    bad.write_text("criteria:\n  - {id: a, title: A, max: 10}\n  - {id: a, title: B, max: 0}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_form(bad)
    assert f"{bad}:3:" in str(raised.value) and "between 1 and 100" in str(raised.value)


def test_a_score_form_is_checked_and_stored_in_the_call_log(tmp_path: Path) -> None:
    path = tmp_path / "calllog.sqlite3"
    log = open_calllog(path)
    log.start()
    record = CallRecord("c1", "chan-c1", "12345", "139****5678", "h1", "v")
    log.call_started(record)
    log.record(RecordingKept("c1-1", "c1", "call", "市公安局", str(tmp_path / "c1-1.wav"), time.time(), 9.0, 1, "x"))
    log.close()
    day = from_epoch(time.time()).date().isoformat()
    runner = CliRunner()
    drawn = runner.invoke(main, ["qa", "sample", "--from", day, "--to", day, "--seed", "3", "--calllog", str(path)])
    assert drawn.exit_code == 0, drawn.output
    assert [json.loads(line)["call_id"] for line in drawn.stdout.splitlines()] == ["c1"]
    form = ["--form", str(ROOT / "qa.yaml"), "--calllog", str(path), "--by", "王五"]
    partial = runner.invoke(main, ["qa", "score", "c1", "-s", "greeting=10", *form])
    assert partial.exit_code == 1 and "listening" in partial.stderr
    full = ["-s", "greeting=10", "-s", "listening=18", "-s", "accuracy=25", "-s", "routing=20"]
    full += ["-s", "courtesy=9", "-s", "closing=8"]
    scored = runner.invoke(main, ["qa", "score", "c1", *full, "--sample", "3", *form])
    assert scored.exit_code == 0, scored.output
    assert scored.stdout.strip() == "c1: 90/100 by 王五"
    stored = catalog.scores(open_calllog(path), 0, time.time() + 60)
    assert {(s["criterion"], s["score"]) for s in stored} >= {("accuracy", 25), ("closing", 8)}
    assert {s["reviewer"] for s in stored} == {"王五"}
