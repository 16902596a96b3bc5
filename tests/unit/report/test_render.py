"""通报考核 rendered: the report of test_figures' known call log as CSV, JSON and an HTML page, and the command.

CSV and JSON carry exactly the figures ivr/report/figures.py computed; the HTML page (Jinja2 templates in
ivr/report/templates/) is self-contained and a real browser (headless Chromium) draws its charts.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import re
import struct
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from click.testing import CliRunner

from ivr.calllog.sqlite import SqliteCallLog
from ivr.cli import main
from ivr.report import figures, render
from ivr.report.figures import DayFigures, Report
from ivr.routing.routes import RouteTable, load
from tests.unit.report.test_figures import (
    AS_OF,
    D1,
    D2,
    GONGAN_FIGURES,
    LVYOU_DIRECT,
    LVYOU_TOTAL,
    LVYOU_VIA,
    ROUTES_YAML,
    write_known_log,
)

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def table() -> RouteTable:
    return load(ROUTES_YAML)


@pytest.fixture(scope="module")
def logfile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "calllog.sqlite3"
    write_known_log(path)
    return path


@pytest.fixture(scope="module")
def rep(logfile: Path, table: RouteTable) -> Report:
    return figures.build(figures.load(SqliteCallLog(logfile), D1, D2), D1, D2, as_of=AS_OF, table=table)


# -- CSV and JSON carry the same numbers -----------------------------------------------------------------------------


def csv_sections(data: bytes) -> dict[str, list[dict[str, str]]]:
    """{section title: rows as {key: cell}}; headers are "中文 key"."""
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    sections: dict[str, list[dict[str, str]]] = {}
    i = 2  # the report's title row, then a blank row
    while i < len(rows):
        title, header = rows[i][0], [cell.rsplit(" ", 1)[-1] for cell in rows[i + 1]]
        i += 2
        body = []
        while i < len(rows) and rows[i]:
            body.append(dict(zip(header, rows[i], strict=True)))
            i += 1
        sections[title] = body
        i += 1
    return sections


def cell(value: object) -> str:
    return "" if value is None else ("yes" if value else "no") if isinstance(value, bool) else str(value)


def test_csv_round_trip(rep: Report) -> None:
    data = render.render_csv(rep)
    assert data.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM: Excel reads the Chinese correctly
    assert "市公安局" in data.decode("utf-8-sig") and b"\r\n" in data
    sections = csv_sections(data)
    assert list(sections) == [
        "中心指标 Centre indicators",
        "各单位考核 Per-unit assessment",
        "每日趋势 Daily trend",
        "按受理方式人工接通 Time to a person by intake",
        "话务员转办 Operators' transfers",
        "录音抽检 Quality review",
        "号码台账 Number ledger",
        "指标口径 Definitions",
    ]
    (centre,) = sections["中心指标 Centre indicators"]
    assert centre == {k: cell(v) for k, v in render.centre_dict(rep.centre).items()}
    intakes = sections["按受理方式人工接通 Time to a person by intake"]
    assert rep.intakes and intakes == [{k: cell(v) for k, v in r.items()} for r in render.intake_records(rep)]
    assert (
        centre["person_15s_pct"] == "23.53"
        and centre["asked_15s_pct"] == "33.33"
        and centre["time_to_human_p90_s"] == "30.0"
    )
    units = sections["各单位考核 Per-unit assessment"]
    expected = render.unit_records(rep)
    assert units[:-1] == [{k: cell(v) for k, v in r.items()} for r in expected]
    gongan = next(r for r in units if r["unit"] == "市公安局" and r["mode"] == "merge")
    assert {
        k: gongan[k]
        for k in (
            "rank",
            "routed",
            "answered_pct",
            "answer_mean_s",
            "answer_p90_s",
            "satisfied_pct",
            "within_deadline_pct",
        )
    } == {
        "rank": "5",
        "routed": "5",
        "answered_pct": "60.0",
        "answer_mean_s": "14.33",
        "answer_p90_s": "27.0",
        "satisfied_pct": "66.67",
        "within_deadline_pct": "33.33",
    }
    lvyou = [
        (r["track"], r["routed"], r["answered_pct"])
        for r in units
        if r["unit"] == "市旅发委" and r["mode"] == "transfer"
    ]
    assert lvyou == [("total", "4", "75.0"), ("direct", "2", "50.0"), ("via_12345", "2", "100.0")]
    assert units[-1]["unit"] == "全部单位 all units" and units[-1]["routed"] == "12"
    assert [(d["day"], d["connection_pct"], d["meets_target"]) for d in sections["每日趋势 Daily trend"]] == [
        ("2026-11-02", "50.0", "no"),
        ("2026-11-03", "100.0", "yes"),
    ]
    ledger = sections["号码台账 Number ledger"]
    assert len(ledger) == 50 and ledger[0]["number"] == "3022782"
    assert {d["key"] for d in sections["指标口径 Definitions"]} == set(figures.DEFINITIONS)


def test_json_round_trip(rep: Report) -> None:
    data = json.loads(render.render_json(rep))
    assert (data["start"], data["end"]) == ("2026-11-02", "2026-11-03")
    assert data["centre"] == dataclasses.asdict(rep.centre)
    assert data["total"] == dataclasses.asdict(rep.total)
    units = {(u["unit"], u["mode"]): u for u in data["units"]}
    assert len(units) == len(rep.units)
    assert units[("市公安局", "merge")]["total"] == dataclasses.asdict(GONGAN_FIGURES)
    assert units[("市公安局", "merge")]["rank"] == 5 and units[("市公安局", "merge")]["direct"] is None
    lvyou = units[("市旅发委", "transfer")]
    assert (lvyou["total"], lvyou["direct"], lvyou["via_12345"]) == tuple(
        dataclasses.asdict(f) for f in (LVYOU_TOTAL, LVYOU_DIRECT, LVYOU_VIA)
    )
    assert data["days"][1] == {
        "day": "2026-11-03",
        "calls": 5,
        "ended": 5,
        "connected": 5,
        "connection_pct": 100.0,
        "meets_target": True,
    }
    assert len(data["ledger"]) == 50 and data["ledger"][5]["route_id"] == "gongan"
    assert data["ledger"][5]["effective"] == "2016-07-31"
    assert set(data["definitions"]) == set(figures.DEFINITIONS)


# -- HTML: one self-contained page that a browser renders ------------------------------------------------------------


def png_rows(data: bytes) -> tuple[int, int, int, list[bytes]]:
    """Decode an 8-bit RGB/RGBA, non-interlaced PNG (what Chromium writes): width, height, bpp, pixel rows."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, []
    width = height = colour = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert (depth, interlace) == (8, 0) and colour in (2, 6)
        elif kind == b"IDAT":
            idat.append(body)
    raw = zlib.decompress(b"".join(idat))
    bpp = 3 if colour == 2 else 4
    stride = width * bpp
    prev, rows = bytes(stride), []
    for y in range(height):
        start = y * (stride + 1)
        kind_, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if kind_ == 1:  # Sub
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif kind_ == 2:  # Up
            line = bytearray([(a + b) & 255 for a, b in zip(line, prev, strict=False)])
        elif kind_ == 3:  # Average
            for i in range(stride):
                line[i] = (line[i] + (((line[i - bpp] if i >= bpp else 0) + prev[i]) >> 1)) & 255
        elif kind_ == 4:  # Paeth
            for i in range(bpp):
                line[i] = (line[i] + prev[i]) & 255
            for i in range(bpp, stride):
                a, b, c = line[i - bpp], prev[i], prev[i - bpp]
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        prev = bytes(line)
        rows.append(prev)
    return width, height, bpp, rows


def test_the_html_page_is_self_contained(rep: Report) -> None:
    page = render.render_html(rep).decode()
    assert re.search(r"https?://", page) is None
    assert not re.search(r"<script|<link|<img|@import|url\(|<iframe|<object", page, re.IGNORECASE)
    assert page.count("<svg") == 3 and "<style>" in page
    for heading in (
        "中心指标",
        "每日趋势",
        "各单位接通率",
        "各单位考核表",
        "按受理方式人工接通",
        "号码台账",
        "Number ledger",
    ):
        assert heading in page
    assert page.count("<tr") > 50 + len(rep.units)  # the ledger and the unit table are there


def test_the_html_renders_in_headless_chromium(rep: Report, tmp_path: Path) -> None:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: `./hotlinectl setup` installs it (Debian package chromium)")
    page, shot = tmp_path / "report.html", tmp_path / "shot.png"
    page.write_bytes(render.render_html(rep))
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1280,2000",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": str(tmp_path)},
        check=False,
    )
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    width, height, bpp, rows = png_rows(shot.read_bytes())
    assert (width, height) == (1280, 2000)
    colours: set[tuple[int, ...]] = set()
    for row in rows:
        colours.update(zip(row[0::bpp], row[1::bpp], row[2::bpp], strict=False))
    not_white = sum(len(row) - row.count(255) for row in rows) / (width * height * bpp)
    assert len(colours) > 50 and not_white > 0.01, (len(colours), not_white)
    # The charts themselves were drawn (not, say, a browser error page): their fill colours are on screen.
    for rgb in ((0x8F, 0xB4, 0xE3), (0x1F, 0x5F, 0xA8), (0xE0, 0xA0, 0x30)):  # trend, answer rate, time bars
        assert rgb in colours, rgb


def test_figures_are_shown_without_a_trailing_zero_and_none_as_a_dash() -> None:
    assert [render.num(v) for v in (95.0, 88.24, 3, None)] == ["95", "88.24", "3", "—"]
    assert (render.num(60.0, "%"), render.num(None, "%")) == ("60%", "—")


def test_an_axis_ends_at_a_readable_value() -> None:
    assert [render.nice_ceiling(v) for v in (0, 0.7, 1, 3, 7, 21, 240, 2500.1)] == [1.0, 1.0, 1, 5, 10, 25, 250, 5000]


def test_bars_are_scaled_to_the_axis_and_a_marker_past_it_stops_at_its_end() -> None:
    chart = render.bar_chart("t", [("a", 50.0, None), ("b", 10.0, 30.0)], 20.0, " s", "#000", "P90")
    left, plot = chart.left, chart.plot
    assert [(b.y, b.width) for b in chart.bars] == [(22, plot * 2.5), (46, plot / 2)]
    assert chart.bars[0].marker_x is None and chart.bars[1].marker_x == left + plot  # 30 s drawn at 20 s
    assert chart.ticks == tuple((left + plot * i / 4, 5.0 * i) for i in range(5))
    assert chart.height == 22 + 2 * 24 + 10


def test_the_trend_puts_each_day_in_its_slot_and_the_rate_on_the_right_axis() -> None:
    days = [
        DayFigures(D1, 4, 4, 3, 75.0, False),
        DayFigures(D2, 1, 1, 1, 100.0, True),
        DayFigures(D2.replace(day=4), 0, 0, 0, None, None),
    ]
    chart = render.trend_chart(days)
    plot_h = chart.height - chart.top - chart.bottom
    assert chart.slot == (chart.width - chart.left - chart.right) / 3
    assert [c.height for c in chart.columns] == [plot_h * 4 / 5, plot_h / 5, 0.0]  # the calls axis ends at 5
    assert [(p.day, p.y) for p in chart.points] == [(D1, chart.top + plot_h / 4), (D2, chart.top)]  # no calls: no dot
    assert chart.target_y == chart.top + plot_h * (1 - 95 / 100)
    assert not render.trend_chart(days[2:]).has_calls


def test_a_report_without_calls_draws_no_data_instead_of_charts(table: RouteTable) -> None:
    empty = figures.build(figures.CallLogRows([], {}, [], []), D1, D2, as_of=AS_OF, table=table)
    page = render.render_html(empty).decode()
    assert page.count("<svg") == 3 and page.count("无数据 No data") == 3
    assert page.count('<tr class="idle">') == len(empty.units)


def test_the_templates_ship_with_the_package() -> None:
    import configparser

    config = configparser.ConfigParser()
    config.read(Path(__file__).resolve().parents[3] / "setup.cfg")
    patterns = config["options.package_data"]["ivr.report"].split()
    templates = Path(render.__file__).with_name("templates")
    shipped = {p for pattern in patterns for p in templates.parent.glob(pattern)}
    assert shipped == set(templates.iterdir()) and shipped
    assert "jinja2" in config["options"]["install_requires"].lower()


# -- the command line --------------------------------------------------------------------------------------------------


@pytest.fixture
def runner() -> Iterator[CliRunner]:
    yield CliRunner()


def run_report(runner: CliRunner, logfile: Path, *args: str) -> Any:
    return runner.invoke(main, ["report", "--calllog", str(logfile), "--routes", str(ROUTES_YAML), *args])


@pytest.mark.parametrize("bad", ["2026-13-01", "yesterday", "2026-11-31", "20261101", ""])
def test_a_bad_date_is_refused_with_a_clear_message(runner: CliRunner, logfile: Path, bad: str) -> None:
    result = run_report(runner, logfile, "--from", bad, "--to", "2026-11-30")
    assert result.exit_code == 2
    assert "--from" in result.output and "YYYY-MM-DD" in result.output


def test_from_after_to_is_refused(runner: CliRunner, logfile: Path) -> None:
    result = run_report(runner, logfile, "--from", "2026-11-30", "--to", "2026-11-01")
    assert result.exit_code == 2
    assert "--from 2026-11-30 is after --to 2026-11-01" in result.output


def test_a_missing_call_log_is_an_environment_error(runner: CliRunner, tmp_path: Path) -> None:
    result = run_report(runner, tmp_path / "none.sqlite3", "--from", "2026-11-02", "--to", "2026-11-03")
    assert result.exit_code == 2 and "no call log" in result.output


def test_the_command_writes_each_format(runner: CliRunner, logfile: Path, tmp_path: Path) -> None:
    period = ("--from", "2026-11-02", "--to", "2026-11-03")
    out = tmp_path / "r.json"
    result = run_report(runner, logfile, *period, "--out", str(out))  # format from the suffix
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text(encoding="utf-8"))
    units = {(u["unit"], u["mode"]): u for u in data["units"]}
    assert units[("市公安局", "merge")]["total"]["answered_pct"] == 60.0 and len(data["ledger"]) == 50
    assert data["centre"]["calls"] == 17 and data["centre"]["callback_minutes"] == 30

    result = run_report(runner, logfile, *period, "--format", "csv", "--callback-minutes", "60")
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes.startswith(b"\xef\xbb\xbf")
    (centre,) = csv_sections(result.stdout_bytes)["中心指标 Centre indicators"]
    assert (centre["callback_minutes"], centre["connection_pct"]) == ("60", "64.71")

    result = run_report(runner, logfile, *period, "--format", "html", "--out", str(tmp_path / "r.out"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r.out").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert run_report(runner, logfile, *period, "--callback-minutes", "0").exit_code == 2


def test_every_format_says_when_the_period_is_on_a_provisional_calendar(table: RouteTable) -> None:
    empty = figures.CallLogRows([], {}, [], [])
    start, end = D1.replace(year=2027, month=1), D2.replace(year=2027, month=1)
    january = figures.build(empty, start, end, as_of=AS_OF, table=table)
    assert january.calendar
    for name, render_one in render.RENDERERS.items():
        data = render_one(january)
        if name == "xlsx":  # a zip: the note is in the centre sheet's title cell
            title = openpyxl.load_workbook(io.BytesIO(data)).worksheets[0]["A1"].value
            assert january.calendar in str(title)
        else:
            assert january.calendar in data.decode("utf-8-sig"), name


def test_the_operators_transfers_table_is_the_same_in_html_csv_and_xlsx(rep: Report) -> None:
    transfers = (
        figures.TransferRow("市公安局", 3, 2, 0, 1, 2, 1, 33.33),
        figures.TransferRow("110报警服务台", 1, 0, 1, 0, 1, 1, 100.0),
    )
    with_transfers = dataclasses.replace(rep, transfers=transfers)
    expected = [[cell(v) for v in dataclasses.astuple(t)] for t in transfers]

    page = render.render_html(with_transfers).decode()
    section = page.split("<h2>话务员转办", 1)[1].split("</table>", 1)[0]
    header = re.findall(r"<small>(\w+)</small></th>", section)
    assert header == [key for key, _ in render.TRANSFER_COLUMNS]
    rows = [re.findall(r"<td[^>]*>([^<]*)</td>", tr) for tr in re.findall(r"<tr><td.*?</tr>", section)]
    assert rows == [
        ["市公安局", "3", "2", "0", "1", "2", "1", "33.33%"],
        ["110报警服务台", "1", "0", "1", "0", "1", "1", "100%"],
    ]

    csv_rows = csv_sections(render.render_csv(with_transfers))["话务员转办 Operators' transfers"]
    assert [list(r.values()) for r in csv_rows] == expected
    sheet = openpyxl.load_workbook(io.BytesIO(render.render_xlsx(with_transfers)))["转办 Transfers"]
    # Excel keeps numbers as numbers (100.0 comes back as 100): compared as values, not as text.
    assert [list(row) for row in sheet.iter_rows(min_row=3, values_only=True)] == [
        list(dataclasses.astuple(t)) for t in transfers
    ]

    empty = render.render_html(dataclasses.replace(rep, transfers=())).decode()
    assert re.search(r"<h2>话务员转办.*?<td class=l colspan=8>—</td>", empty, re.S)  # there, saying: none
