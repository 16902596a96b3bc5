"""通报考核 as a file: a `Report` (ivr.report.figures) rendered as JSON, CSV, one HTML page or an Excel workbook.

The figures are computed in ivr.report.figures; nothing here counts. The HTML page, its CSS and its SVG
charts are Jinja2 templates in templates/ (report.html.j2, charts.html.j2); this module only works out
where each bar and point of a chart goes, in pixels, so the templates hold markup and no arithmetic.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import openpyxl
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from ivr.report.figures import (
    CONNECTION_TARGET_PCT,
    DEFINITIONS,
    CentreFigures,
    DayFigures,
    ModeRow,
    Report,
    UnitRow,
)

MODE_NAMES = {"merge": "归并 merge", "transfer": "双号并行 transfer", "interconnect": "互联 interconnect"}
TRACK_NAMES = {"total": "合计 total", "direct": "直拨 direct", "via_12345": "经12345 via 12345"}

FIGURE_COLUMNS = (
    ("routed", "转办量"),
    ("dialled", "实际转接"),
    ("answered", "接通数"),
    ("answered_pct", "部门接通率%"),
    ("answer_mean_s", "平均应答秒"),
    ("answer_p90_s", "P90应答秒"),
    ("no_answer", "未接"),
    ("busy", "占线"),
    ("overflowed", "溢出"),
    ("abandoned_in_queue", "排队放弃"),
    ("messages", "留言"),
    ("rated", "评价数"),
    ("satisfaction_avg", "平均评分"),
    ("satisfied_pct", "满意率%"),
    ("tickets_due", "到期工单"),
    ("tickets_within", "按时办结"),
    ("within_deadline_pct", "按时办结率%"),
    ("ended", "来电量(已结束)"),
    ("person_15s", "15秒内人工接听"),
    ("person_15s_pct", "15秒人工接听率%"),
    ("asked", "请求人工"),
    ("asked_15s", "请求后15秒内人工接听"),
    ("asked_15s_pct", "请求人工15秒接听率%"),
)
UNIT_COLUMNS = (("rank", "排名"), ("unit", "单位"), ("mode", "方式"), ("track", "渠道"), *FIGURE_COLUMNS)
CENTRE_COLUMNS = (
    ("calls", "来电量"),
    ("person_15s", "15秒内人工接听"),
    ("person_15s_pct", "15秒人工接听率%"),
    ("asked", "请求人工"),
    ("asked_15s", "请求后15秒内人工接听"),
    ("asked_15s_pct", "请求人工15秒接听率%"),
    ("ended", "呼入量(已结束)"),
    ("connected", "人工接通"),
    ("connection_pct", "24小时接通率%"),
    ("connection_target_pct", "接通率目标%"),
    ("messages", "留言"),
    ("goodbyes", "无效按键结束"),
    ("informed", "查询进度"),
    ("abandoned", "放弃"),
    ("refused", "过载拒接"),
    ("fallback", "兜底接入"),
    ("days_with_calls", "有来电天数"),
    ("days_meeting_target", "达标天数"),
    ("time_to_human_n", "人工接通数"),
    ("time_to_human_mean_s", "人工接通平均秒"),
    ("time_to_human_p50_s", "人工接通P50秒"),
    ("time_to_human_p90_s", "人工接通P90秒"),
    ("callback_minutes", "回拨时限分钟"),
    ("callbacks_due", "应回拨"),
    ("callbacks_within", "按时回拨"),
    ("callback_pct", "按时回拨率%"),
    ("tickets_due", "到期工单"),
    ("tickets_within", "按时办结"),
    ("within_deadline_pct", "按时办结率%"),
    ("followups_rated", "回访评价数"),
    ("handling_satisfaction_avg", "办理平均评分"),
    ("handling_satisfied_pct", "办理满意率%"),
)
INTAKE_COLUMNS = (
    ("intake", "受理方式"),
    ("calls", "来电量"),
    ("to_person", "人工接通数"),
    ("within_15s", "15秒内人工接通"),
    ("within_15s_pct", "15秒人工接通率%"),
    ("mean_s", "人工接通平均秒"),
    ("p90_s", "人工接通P90秒"),
)
DAY_COLUMNS = (
    ("day", "日期"),
    ("calls", "来电量"),
    ("ended", "呼入量"),
    ("connected", "人工接通"),
    ("connection_pct", "接通率%"),
    ("meets_target", "达标"),
)
LEDGER_COLUMNS = (
    ("number", "号码"),
    ("unit", "单位"),
    ("line_name", "热线名称"),
    ("mode", "方式"),
    ("effective", "生效日期"),
    ("live", "已生效"),
    ("direct_dial", "可直拨"),
    ("route_id", "路由"),
    ("dial", "呼叫字符串"),
    ("partner", "互联平台"),
    ("menu_keys", "12345按键"),
)


# -- flat records: what the tables of every format are made of --------------------------------------------------


def centre_dict(centre: CentreFigures) -> dict[str, Any]:
    """The centre figures as one flat mapping (time_to_human.* as time_to_human_*), CENTRE_COLUMNS' keys."""
    data = dataclasses.asdict(centre)
    spread = data.pop("time_to_human")
    data.update({f"time_to_human_{k}": v for k, v in spread.items()})
    return data


def unit_records(report: Report) -> list[dict[str, Any]]:
    """The per-unit table flattened: one record per row and track, UNIT_COLUMNS' keys."""
    return [
        {"rank": row.rank, "unit": row.unit, "mode": row.mode, "track": track, **dataclasses.asdict(fig)}
        for row in report.units
        for track, fig in row.tracks()
    ]


def as_dict(report: Report) -> dict[str, Any]:
    data = dataclasses.asdict(report)
    data["definitions"] = {k: {"title": t, "definition": d} for k, (t, d) in DEFINITIONS.items()}
    return data


# -- JSON and CSV ----------------------------------------------------------------------------------------------------


def _json_default(value: object) -> str:
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def render_json(report: Report) -> bytes:
    return (json.dumps(as_dict(report), ensure_ascii=False, indent=2, default=_json_default) + "\n").encode()


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def render_csv(report: Report) -> bytes:
    """One table per section: a title row, a header row ("中文 key"), the rows, a blank row.

    UTF-8 with a BOM, CRLF line ends: what Excel needs to open Chinese text correctly.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")

    def section(title: str, columns: Sequence[tuple[str, str]], records: Iterable[Mapping[str, Any]]) -> None:
        writer.writerow([title])
        writer.writerow([f"{zh} {key}" for key, zh in columns])
        writer.writerows([_cell(r[key]) for key, _ in columns] for r in records)
        writer.writerow([])

    writer.writerow(
        [
            f"12345热线通报考核 Assessment report {report.start} - {report.end}",
            f"generated {report.generated_at}",
            f"routes {report.routes_version}",
            *([f"calendar: {report.calendar}"] if report.calendar else []),
            *([f"routes: {report.routes_note}"] if report.routes_note else []),
        ]
    )
    writer.writerow([])
    section("中心指标 Centre indicators", CENTRE_COLUMNS, [centre_dict(report.centre)])
    section(
        "各单位考核 Per-unit assessment",
        UNIT_COLUMNS,
        [
            *unit_records(report),
            {
                "rank": None,
                "unit": "全部单位 all units",
                "mode": "",
                "track": "total",
                **dataclasses.asdict(report.total),
            },
        ],
    )
    section("每日趋势 Daily trend", DAY_COLUMNS, [dataclasses.asdict(d) for d in report.days])
    section("按受理方式人工接通 Time to a person by intake", INTAKE_COLUMNS, intake_records(report))
    section("话务员转办 Operators' transfers", TRANSFER_COLUMNS, [dataclasses.asdict(t) for t in report.transfers])
    section("录音抽检 Quality review", QA_COLUMNS, qa_records(report))
    section("号码台账 Number ledger", LEDGER_COLUMNS, [dataclasses.asdict(r) for r in report.ledger])
    section(
        "指标口径 Definitions",
        (("key", "指标"), ("title", "名称"), ("definition", "定义")),
        [{"key": k, "title": t, "definition": d} for k, (t, d) in DEFINITIONS.items()],
    )
    return out.getvalue().encode("utf-8-sig")


# -- HTML: one self-contained page from templates/, charts as inline SVG -------------------------------------------


def num(value: float | None, suffix: str = "") -> str:
    """A figure as the page shows it: "—" for none, floats without a trailing .0 (95.0 -> 95)."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:g}{suffix}"
    return f"{value}{suffix}"


@dataclass(frozen=True)
class Bar:
    name: str
    value: float
    y: int  # top of the bar's row
    width: float
    marker: float | None = None  # drawn as a tick at marker_x (e.g. p90)
    marker_x: float | None = None


@dataclass(frozen=True)
class BarChart:
    """Horizontal bars, one per item, on a scale of 0..max_value with 5 grid lines."""

    label: str
    colour: str
    suffix: str  # of the values shown ("%", " s")
    marker_name: str
    bars: tuple[Bar, ...]
    ticks: tuple[tuple[float, float], ...] = ()  # (x, value) of each grid line
    left: int = 250
    plot: int = 620
    row_height: int = 24
    top: int = 22

    @property
    def width(self) -> int:
        return self.left + self.plot + 110

    @property
    def height(self) -> int:
        return self.top + self.row_height * len(self.bars) + 10


def bar_chart(
    label: str,
    items: Sequence[tuple[str, float, float | None]],
    max_value: float,
    suffix: str,
    colour: str,
    marker_name: str = "",
) -> BarChart:
    """Items are (name, value, marker or None); a marker past max_value is drawn at the end of the scale."""
    chart = BarChart(label, colour, suffix, marker_name, ())
    left, plot, row_h, top = chart.left, chart.plot, chart.row_height, chart.top
    bars = []
    for i, (name, value, marker) in enumerate(items):
        width = plot * value / max_value if max_value else 0.0
        marker_x = left + plot * min(marker, max_value) / max_value if marker is not None and max_value else None
        bars.append(Bar(name, value, top + i * row_h, width, marker, marker_x))
    ticks = tuple((left + plot * i / 4, max_value * i / 4) for i in range(5))
    return dataclasses.replace(chart, bars=tuple(bars), ticks=ticks)


@dataclass(frozen=True)
class DayColumn:
    day: dt.date
    calls: int
    x: float  # left of the day's slot
    y: float  # top of its bar
    height: float
    labelled: bool  # its date is written under it (every n-th day, so long periods stay legible)


@dataclass(frozen=True)
class DayPoint:
    day: dt.date
    connection_pct: float | None
    meets_target: bool | None
    x: float
    y: float


@dataclass(frozen=True)
class TrendChart:
    """Calls per day (bars, left axis) and the day's connection rate (line, right axis) with the target."""

    label: str
    has_calls: bool
    slot: float  # the width of one day
    grid: tuple[tuple[float, float, int], ...]  # (y, calls, percent) of each horizontal grid line
    columns: tuple[DayColumn, ...]
    points: tuple[DayPoint, ...]  # days with ended calls, on the connection-rate line
    target_y: float
    target_pct: float
    left: int = 56
    right: int = 56
    top: int = 24
    bottom: int = 44
    width: int = 1100
    height: int = 320


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 (times a power of ten) at or above value: a readable top of an axis."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= value)


def trend_chart(days: Sequence[DayFigures]) -> TrendChart:
    label = "每日来电量与接通率 Calls and connection rate per day"
    empty = TrendChart(label, False, 0.0, (), (), (), 0.0, CONNECTION_TARGET_PCT)
    if not any(d.calls for d in days):
        return empty
    top, plot_w = empty.top, empty.width - empty.left - empty.right
    plot_h = empty.height - top - empty.bottom
    slot = plot_w / len(days)
    top_calls = nice_ceiling(max(d.calls for d in days))

    def y_pct(pct: float) -> float:
        return top + plot_h * (1 - pct / 100)

    every = max(1, math.ceil(len(days) / 16))
    columns, points = [], []
    for i, d in enumerate(days):
        x = empty.left + i * slot
        h = plot_h * d.calls / top_calls
        columns.append(DayColumn(d.day, d.calls, x, top + plot_h - h, h, i % every == 0))
        if d.connection_pct is not None:
            points.append(DayPoint(d.day, d.connection_pct, d.meets_target, x + slot / 2, y_pct(d.connection_pct)))
    return dataclasses.replace(
        empty,
        has_calls=True,
        slot=slot,
        grid=tuple((top + plot_h * i / 4, top_calls * (4 - i) / 4, 100 * (4 - i) // 4) for i in range(5)),
        columns=tuple(columns),
        points=tuple(points),
        target_y=y_pct(CONNECTION_TARGET_PCT),
    )


def row_name(row: UnitRow) -> str:
    return f"{row.unit} · {MODE_NAMES.get(row.mode, row.mode).split()[0]}"


_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_TEMPLATES.filters["num"] = num
_TEMPLATES.filters["px"] = lambda value: f"{value:.1f}"  # SVG coordinates: one decimal is sub-pixel enough


def render_html(report: Report) -> bytes:
    """One self-contained page: inline CSS and SVG, no scripts, fonts or anything fetched."""
    ranked = [r for r in report.units if r.rank is not None]
    answered = [r for r in ranked if r.total.answer_mean_s is not None]
    slowest = max(
        [r.total.answer_p90_s or 0.0 for r in answered] + [r.total.answer_mean_s or 0.0 for r in answered] + [0.0]
    )
    page = _TEMPLATES.get_template("report.html.j2").render(
        report=report,
        trend=trend_chart(report.days),
        answer_rate=bar_chart(
            "各单位接通率 Answer rate by unit",
            [(f"{r.rank}. {row_name(r)}", r.total.answered_pct or 0.0, None) for r in ranked],
            100.0,
            "%",
            "#1f5fa8",
        ),
        answer_time=bar_chart(
            "各单位应答时长 Time to answer by unit",
            [(row_name(r), r.total.answer_mean_s or 0.0, r.total.answer_p90_s) for r in answered],
            nice_ceiling(slowest),
            " s",
            "#e0a030",
            "P90",
        ),
        MODE_NAMES=MODE_NAMES,
        TRACK_NAMES=TRACK_NAMES,
        UNIT_COLUMNS=UNIT_COLUMNS,
        DAY_COLUMNS=DAY_COLUMNS,
        INTAKE_COLUMNS=INTAKE_COLUMNS,
        TRANSFER_COLUMNS=TRANSFER_COLUMNS,
        QA_COLUMNS=QA_COLUMNS,
        qa_records=qa_records(report),
        LEDGER_COLUMNS=LEDGER_COLUMNS,
        DEFINITIONS=DEFINITIONS,
    )
    return page.encode()


# -- Excel: one sheet per view, the glossary last ------------------------------------------------------------------

MODE_COLUMNS = (("mode", "方式"), ("units", "单位数"), *FIGURE_COLUMNS)
CALLBACK_COLUMNS = (
    ("callback_minutes", "回拨时限分钟"),
    ("callbacks_due", "应回拨"),
    ("callbacks_within", "按时回拨"),
    ("callback_pct", "按时回拨率%"),
)
TRANSFER_COLUMNS = (
    ("unit", "单位"),
    ("transfers", "转办"),
    ("consult", "咨询转"),
    ("three_way", "三方"),
    ("blind", "直转"),
    ("answered", "接通"),
    ("handed_over", "转交成功"),
    ("handed_over_pct", "转交成功率%"),
)
QA_COLUMNS = (
    ("group", "类别"),
    ("name", "单位/坐席"),
    ("recorded", "录音数"),
    ("scored", "已评分"),
    ("criteria", "各项平均分"),
    ("overall", "平均总分"),
)
GLOSSARY_COLUMNS = (("key", "指标"), ("title", "名称"), ("definition", "定义"))
# Sheet names: Excel allows 31 characters and no []:*?/\ in them.
SHEETS = {
    "centre": "中心指标 Centre",
    "units": "各单位 Units",
    "modes": "接入方式 Modes",
    "dual_track": "双号并行 Dual-track",
    "days": "每日 Days",
    "intakes": "受理方式 Intake",
    "transfers": "转办 Transfers",
    "qa": "录音抽检 QA",
    "ledger": "号码台账 Ledger",
    "callbacks": "回拨 Callbacks",
    "glossary": "指标口径 Glossary",
}


def qa_records(report: Report) -> list[dict[str, Any]]:
    """The QA rows flat: the per-criterion means as one cell, "id=mean; id=mean" (2 decimals)."""
    return [{**dataclasses.asdict(q), "criteria": "; ".join(f"{c}={m:.2f}" for c, m in q.criteria)} for q in report.qa]


def intake_records(report: Report) -> list[dict[str, Any]]:
    return [dataclasses.asdict(i) for i in report.intakes]


def mode_records(report: Report) -> list[dict[str, Any]]:
    return [_mode_record(m) for m in report.modes]


def _mode_record(m: ModeRow) -> dict[str, Any]:
    return {"mode": m.mode, "units": m.units, **dataclasses.asdict(m.figures)}


def dual_track_records(report: Report) -> list[dict[str, Any]]:
    """The transfer (dual-track) rows, each as total, direct and via-12345 lines."""
    return [r for r in unit_records(report) if r["mode"] == "transfer"]


def _xlsx_value(value: object) -> object:
    # Excel cells hold numbers, text, booleans and dates as they are; None and "" are an empty cell.
    if value is None or value == "":
        return None
    return value if isinstance(value, (int, float, str, dt.date)) else str(value)


def _table(
    ws: Worksheet, heading: str, columns: Sequence[tuple[str, str]], records: Iterable[Mapping[str, Any]]
) -> None:
    """A title row, a header row ("中文 key", as the CSV), then one row per record; header frozen."""
    ws.append([heading])
    ws["A1"].font = Font(bold=True, size=13)
    ws.append([f"{zh} {key}" for key, zh in columns])
    for cell in ws[2]:
        cell.font = Font(bold=True)
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    for record in records:
        ws.append([_xlsx_value(record[key]) for key, _ in columns])
    ws.freeze_panes = "A3"
    for i, (key, zh) in enumerate(columns, start=1):
        widest = max([len(str(c.value or "")) for c in ws[get_column_letter(i)][2:]] + [len(zh) * 2, len(key)])
        ws.column_dimensions[get_column_letter(i)].width = min(60, max(8, widest + 2))


def render_xlsx(report: Report) -> bytes:
    """One sheet per view (centre, units, modes, dual-track, days, ledger, callbacks) and the glossary.

    The header rows are the CSV's ("中文 key"), the values the JSON's: a figure is the same number in every format.
    """
    wb = openpyxl.Workbook()
    period = f"{report.start} – {report.end}"
    # Created = the report time (what the figures are judged at); openpyxl stamps "modified" with the save.
    wb.properties.created = dt.datetime.fromtimestamp(report.as_of, dt.UTC).replace(tzinfo=None)
    wb.properties.title = f"12345热线通报考核 {period}"
    wb.properties.creator = "hotline report"

    centre = wb.active
    assert centre is not None
    centre.title = SHEETS["centre"]
    centre_row = centre_dict(report.centre)
    _table(
        centre,
        f"12345热线通报考核 Assessment report {period} · generated {report.generated_at}"
        f" · routes {report.routes_version}"
        + (f" · calendar: {report.calendar}" if report.calendar else "")
        + (f" · routes: {report.routes_note}" if report.routes_note else ""),
        (("key", "指标"), ("value", "数值")),
        [{"key": f"{zh} {key}", "value": centre_row[key]} for key, zh in CENTRE_COLUMNS],
    )
    total = {"rank": None, "unit": "全部单位 all units", "mode": "", "track": "total"}
    total.update(dataclasses.asdict(report.total))
    views: list[tuple[str, str, Sequence[tuple[str, str]], list[dict[str, Any]]]] = [
        ("units", "各单位考核 Per-unit assessment", UNIT_COLUMNS, [*unit_records(report), total]),
        ("modes", "按接入方式 By mode", MODE_COLUMNS, mode_records(report)),
        ("dual_track", "双号并行分渠道 Dual-track rows by track", UNIT_COLUMNS, dual_track_records(report)),
        ("days", "每日趋势 Daily trend", DAY_COLUMNS, [dataclasses.asdict(d) for d in report.days]),
        ("intakes", "按受理方式人工接通 Time to a person by intake", INTAKE_COLUMNS, intake_records(report)),
        (
            "transfers",
            "话务员转办 Operators' transfers",
            TRANSFER_COLUMNS,
            [dataclasses.asdict(t) for t in report.transfers],
        ),
        ("qa", "录音抽检 Quality review", QA_COLUMNS, qa_records(report)),
        ("ledger", "号码台账 Number ledger", LEDGER_COLUMNS, [dataclasses.asdict(r) for r in report.ledger]),
        ("callbacks", "未接来电回拨 Missed-call callbacks", CALLBACK_COLUMNS, [centre_row]),
        (
            "glossary",
            "指标口径 Definitions",
            GLOSSARY_COLUMNS,
            [{"key": k, "title": t, "definition": d} for k, (t, d) in DEFINITIONS.items()],
        ),
    ]
    for name, heading, columns, records in views:
        _table(wb.create_sheet(SHEETS[name]), f"{heading} · {period}", columns, records)
    glossary = wb[SHEETS["glossary"]]
    glossary.column_dimensions["C"].width = 100
    for (cell,) in glossary.iter_rows(min_row=3, min_col=3, max_col=3):
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def period_name(start: dt.date, end: dt.date) -> str:
    """A report file's name for its period: 2026-11-05 (a day), 2026-11 (a calendar month), else from_to."""
    if start == end:
        return start.isoformat()
    whole_month = start.day == 1 and (end + dt.timedelta(days=1)).day == 1
    if whole_month and (start.year, start.month) == (end.year, end.month):
        return f"{start:%Y-%m}"
    return f"{start}_{end}"


RENDERERS: dict[str, Callable[[Report], bytes]] = {
    "json": render_json,
    "csv": render_csv,
    "html": render_html,
    "xlsx": render_xlsx,
}
