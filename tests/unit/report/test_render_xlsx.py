"""`hotline report --format xlsx`: the 通报 as an Excel workbook, one sheet per view and the glossary.

Every cell is checked against the JSON report of the same call log — the workbook must say the same
numbers — and a few against the hand-computed figures of test_figures.py.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from click.testing import CliRunner
from openpyxl.worksheet.worksheet import Worksheet

from ivr.calllog.sqlite import SqliteCallLog
from ivr.cli import _relative_period, main
from ivr.report import figures, render
from ivr.report.figures import Report
from ivr.routing.routes import RouteTable, load
from tests.unit.report.test_figures import AS_OF, D1, D2, GONGAN_FIGURES, LVYOU_TOTAL, ROUTES_YAML, write_known_log


@pytest.fixture(scope="module")
def logfile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("xlsx") / "calllog.sqlite3"
    write_known_log(path)
    return path


@pytest.fixture(scope="module")
def table() -> RouteTable:
    return load(ROUTES_YAML)


@pytest.fixture(scope="module")
def rep(logfile: Path, table: RouteTable) -> Report:
    return figures.build(figures.load(SqliteCallLog(logfile), D1, D2), D1, D2, as_of=AS_OF, table=table)


def report_cli(logfile: Path, *args: str) -> Any:
    result = CliRunner().invoke(
        main,
        ["report", "--calllog", str(logfile), "--routes", str(ROUTES_YAML), "--from", str(D1), "--to", str(D2), *args],
    )
    assert result.exit_code == 0, result.output
    return result


def table_of(ws: Worksheet) -> list[dict[str, Any]]:
    """A sheet's rows as {key: value}, the key read from the header row ("中文 key")."""
    rows = list(ws.iter_rows(values_only=True))
    keys = [str(h).rsplit(" ", 1)[1] for h in rows[1]]
    return [dict(zip(keys, row, strict=True)) for row in rows[2:]]


def same(cell: Any, value: Any) -> bool:
    if value == "":  # empty text is an empty cell
        return cell is None
    if isinstance(cell, dt.datetime):  # openpyxl reads a date cell back as a datetime at midnight
        return cell.date().isoformat() == value
    return cell == value


def assert_rows(ws: Worksheet, expected: list[dict[str, Any]]) -> None:
    got = table_of(ws)
    assert len(got) == len(expected), ws.title
    for n, (row, want) in enumerate(zip(got, expected, strict=True)):
        for key, cell in row.items():
            assert same(cell, want[key]), f"{ws.title} row {n} {key}: cell {cell!r}, JSON {want[key]!r}"


def test_the_workbook_says_what_the_json_report_says_sheet_by_sheet(logfile: Path, tmp_path: Path) -> None:
    data = json.loads(report_cli(logfile, "--format", "json").stdout_bytes)
    report_cli(logfile, "--format", "xlsx", "--out", f"{tmp_path}/reports/")
    path = tmp_path / "reports" / f"12345-report-{D1}_{D2}.xlsx"  # named by its period in the folder
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == list(render.SHEETS.values())
    sheet = {key: wb[name] for key, name in render.SHEETS.items()}

    centre = {row["key"].rsplit(" ", 1)[1]: row["value"] for row in table_of(sheet["centre"])}
    flat_centre = dict(data["centre"])
    flat_centre.update({f"time_to_human_{k}": v for k, v in flat_centre.pop("time_to_human").items()})
    assert centre == {key: flat_centre[key] for key, _ in render.CENTRE_COLUMNS}
    assert f"{D1} – {D2}" in str(sheet["centre"]["A1"].value)

    units = [
        {"rank": u["rank"], "unit": u["unit"], "mode": u["mode"], "track": track, **u[field]}
        for u in data["units"]
        for track, field in (("total", "total"), ("direct", "direct"), ("via_12345", "via_12345"))
        if u[field] is not None
    ]
    total = {"rank": None, "unit": "全部单位 all units", "mode": "", "track": "total", **data["total"]}
    assert_rows(sheet["units"], [*units, total])
    assert_rows(sheet["dual_track"], [u for u in units if u["mode"] == "transfer"])
    assert_rows(sheet["modes"], [{"mode": m["mode"], "units": m["units"], **m["figures"]} for m in data["modes"]])
    assert_rows(sheet["days"], data["days"])
    assert_rows(sheet["ledger"], data["ledger"])
    assert_rows(sheet["callbacks"], [flat_centre])
    assert_rows(
        sheet["glossary"],
        [{"key": k, "title": d["title"], "definition": d["definition"]} for k, d in data["definitions"].items()],
    )

    # And against the figures worked out by hand (test_figures.py): 市公安局 answered 3 of 5.
    gongan = next(r for r in table_of(sheet["units"]) if r["unit"] == "市公安局" and r["track"] == "total")
    assert (gongan["routed"], gongan["answered"], gongan["answered_pct"]) == (5, 3, GONGAN_FIGURES.answered_pct)


def test_the_glossary_sheet_defines_every_figure_including_modes(rep: Report) -> None:
    wb = openpyxl.load_workbook(io.BytesIO(render.render_xlsx(rep)))
    keys = [row["key"] for row in table_of(wb[render.SHEETS["glossary"]])]
    assert keys == list(figures.DEFINITIONS) and "modes" in keys


def test_modes_add_up_the_units_of_each_mode(rep: Report) -> None:
    by_mode = {m.mode: m for m in rep.modes}
    assert list(by_mode) == ["merge", "transfer", "interconnect"]
    assert by_mode["transfer"].figures == LVYOU_TOTAL  # the only dual-track unit with calls in the log
    assert sum(m.figures.routed for m in rep.modes) == rep.total.routed
    assert sum(m.units for m in rep.modes) == len(rep.units)


def test_the_workbook_is_dated_and_titled_by_the_report_not_by_the_clock(rep: Report) -> None:
    wb = openpyxl.load_workbook(io.BytesIO(render.render_xlsx(rep)))
    assert wb.properties.created == dt.datetime.fromtimestamp(AS_OF, dt.UTC).replace(tzinfo=None)
    assert wb.properties.title == f"12345热线通报考核 {D1} – {D2}"


@pytest.mark.parametrize(
    ("start", "end", "name"),
    [
        (dt.date(2026, 11, 5), dt.date(2026, 11, 5), "2026-11-05"),
        (dt.date(2026, 11, 1), dt.date(2026, 11, 30), "2026-11"),
        (dt.date(2026, 2, 1), dt.date(2026, 2, 28), "2026-02"),
        (dt.date(2026, 11, 1), dt.date(2026, 11, 29), "2026-11-01_2026-11-29"),
        (dt.date(2026, 11, 1), dt.date(2026, 12, 31), "2026-11-01_2026-12-31"),
    ],
)
def test_a_report_file_is_named_by_its_period(start: dt.date, end: dt.date, name: str) -> None:
    assert render.period_name(start, end) == name


def test_relative_periods_for_the_timers() -> None:
    assert _relative_period("yesterday", dt.date(2026, 3, 1)) == (dt.date(2026, 2, 28), dt.date(2026, 2, 28))
    assert _relative_period("last-month", dt.date(2026, 1, 15)) == (dt.date(2025, 12, 1), dt.date(2025, 12, 31))
    assert _relative_period("last-month", dt.date(2026, 3, 1)) == (dt.date(2026, 2, 1), dt.date(2026, 2, 28))


def test_period_and_dates_together_are_refused(logfile: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["report", "--calllog", str(logfile), "--period", "yesterday", "--from", "2026-11-01", "--to", "2026-11-02"],
    )
    assert result.exit_code == 2 and "--period or --from/--to, not both" in result.output
    result = CliRunner().invoke(main, ["report", "--calllog", str(logfile), "--from", "2026-11-01"])
    assert result.exit_code == 2 and "give --from and --to (or --period)" in result.output
