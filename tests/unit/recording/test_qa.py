"""录音抽检: the sample is random but reproducible with its seed; score forms are checked and stored."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import openpyxl
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


def test_the_report_shows_the_sampled_calls_scores_per_unit_and_operator_seat(tmp_path: Path) -> None:
    from ivr.calllog.records import Outcome
    from ivr.report import figures
    from ivr.report.render import SHEETS, render_csv, render_html, render_xlsx

    path = tmp_path / "calllog.sqlite3"
    log = open_calllog(path)
    log.start()
    now = time.time()
    calls = [(f"d{i}", "市公安局", Outcome.CONNECTED, "市公安局") for i in range(4)]
    calls += [(f"o{i}", "", Outcome.OPERATOR, "seat-7") for i in range(3)]
    for call_id, unit, outcome, party in calls:
        record = CallRecord(call_id, f"chan-{call_id}", "12345", "139****5678", "h1", "v", started_at=now)
        record.unit, record.mode, record.outcome = unit, "transfer" if unit else "", outcome
        log.call_started(record)
        log.call_finished(record)
        log.record(RecordingKept(f"{call_id}-1", call_id, "call", party, str(tmp_path / call_id), now, 9.0, 1, "x"))
    log.close()
    day = from_epoch(now).date().isoformat()
    runner = CliRunner()
    args = ["qa", "sample", "--from", day, "--to", day, "--per-unit", "2", "--per-operator", "1", "--seed", "11"]
    drawn = [json.loads(line) for line in runner.invoke(main, [*args, "--calllog", str(path)]).stdout.splitlines()]
    again = [json.loads(line) for line in runner.invoke(main, [*args, "--calllog", str(path)]).stdout.splitlines()]
    assert drawn == again and len(drawn) == 3  # 2 of the unit's 4, 1 of the seat's 3
    department = [d["call_id"] for d in drawn if "unit" in d]
    (operator,) = [d["call_id"] for d in drawn if "operator" in d]
    assert len(department) == 2 and operator.startswith("o")
    forms = {  # the six criteria of qa.yaml, out of 100
        department[0]: dict(greeting=10, listening=20, accuracy=30, routing=20, courtesy=10, closing=10),  # 100
        department[1]: dict(greeting=6, listening=15, accuracy=21, routing=12, courtesy=7, closing=5),  # 66
        operator: dict(greeting=9, listening=18, accuracy=25, routing=20, courtesy=9, closing=8),  # 89
    }
    for call_id, form in forms.items():
        given = [x for k, v in form.items() for x in ("-s", f"{k}={v}")]
        scored = runner.invoke(
            main,
            ["qa", "score", call_id, *given, "--by", "王五", "--sample", "11", "--form", str(ROOT / "qa.yaml")]
            + ["--calllog", str(path)],
        )
        assert scored.exit_code == 0, scored.output

    start = from_epoch(now).date()
    rep = figures.build(figures.load(open_calllog(path), start, start), start, start, as_of=now + 60)
    unit_row, seat_row = rep.qa
    assert (unit_row.group, unit_row.name, unit_row.recorded, unit_row.scored) == ("unit", "市公安局", 4, 2)
    assert dict(unit_row.criteria) == {
        "accuracy": 25.5,
        "closing": 7.5,
        "courtesy": 8.5,
        "greeting": 8.0,
        "listening": 17.5,
        "routing": 16.0,
    }
    assert unit_row.overall == 83.0  # (100 + 66) / 2
    assert (seat_row.group, seat_row.name, seat_row.recorded, seat_row.scored) == ("operator", "seat-7", 3, 1)
    assert dict(seat_row.criteria)["accuracy"] == 25.0 and seat_row.overall == 89.0
    csv_text = render_csv(rep).decode("utf-8-sig")
    assert "录音抽检 Quality review" in csv_text
    assert "unit,市公安局,4,2,accuracy=25.50; closing=7.50; courtesy=8.50; greeting=8.00; listening=17.50; " in csv_text
    page = render_html(rep).decode()
    assert "Quality review" in page and "<td class=l>seat-7</td><td>3</td><td>1</td>" in page
    assert SHEETS["qa"] in openpyxl.load_workbook(io.BytesIO(render_xlsx(rep))).sheetnames
