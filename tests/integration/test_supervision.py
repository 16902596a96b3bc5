"""Supervision checked against the real thing: Prometheus scraping the controller during calls.

A real Prometheus (Debian's package) scrapes the controller while SIPp citizens call; then
every PromQL expression of the Grafana dashboard and of the alert/recording rules is
evaluated through Prometheus' HTTP API. Each must return data, and the figures must agree
with the call log.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from ivr.timekeeping import LOCAL_TZ
from lab.citizen import place_call
from lab.manager import Prometheus
from tests.integration.conftest import DEPARTMENTS_PORT, REPO, SEAT_PORTS, Controller, Phone, until

pytestmark = pytest.mark.integration

PROMETHEUS_PORT = 9390
DASHBOARD = REPO / "monitoring" / "grafana" / "dashboards" / "hotline.json"
RULES = REPO / "monitoring" / "alerts.yml"
# A filter against a number ("> 0", "< 0.8"): dropped to evaluate the quantity being watched.
COMPARISON = re.compile(r"\s*(==|!=|>=|<=|>|<)\s*(bool\s+)?-?[0-9.]+(?![0-9A-Za-z_.])")


def query(expr: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "success", (expr, body)
    return list(body["data"]["result"])


def value(expr: str) -> float:
    result = query(expr)
    return sum(float(r["value"][1]) for r in result)


def dashboard_exprs() -> list[str]:
    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    data = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in panels(data["panels"]) for t in p.get("targets", []) if t.get("expr")]
    # Grafana's variables, as Grafana would fill them for "all units" and a short interval.
    return [
        e.replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$__range", "5m")
        .replace('"$unit"', '".*"')
        .replace("$unit", ".*")
        for e in exprs
    ]


def rule_exprs() -> list[tuple[str, str]]:
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [(r.get("alert") or r.get("record"), r["expr"]) for g in data["groups"] for r in g["rules"]]


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Prometheus]:
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(RULES)],
                "scrape_configs": [{"job_name": "hotline", "static_configs": [{"targets": ["127.0.0.1:9345"]}]}],
            }
        )
    )
    server = Prometheus(tmp_path, config=config, addr=f"127.0.0.1:{PROMETHEUS_PORT}")  # the lab manager's
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_every_dashboard_and_rule_expression_returns_data_that_agrees_with_the_call_log(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone], prometheus: Prometheus
) -> None:
    phones(DEPARTMENTS_PORT, talk_ms=1000)
    phones(SEAT_PORTS[0], talk_ms=1000)
    phones(SEAT_PORTS[1], talk_ms=1000)
    controller = start_controller()
    until(lambda: value('up{job="hotline"}') == 1, timeout=30, what="prometheus to scrape the controller")

    # A short mixed load: departments by menu, a dual-track line dialled directly, operators, a
    # satisfaction rating, and a caller who gives up in the menu.
    calls = [
        ("12345", "1" + "," * 8 + "1"),
        ("12345", "21"),
        ("12310", ""),
        ("12345", "0"),
        ("12345", "1"),
        ("12345", ""),
    ]
    with ThreadPoolExecutor(3) as pool:
        runs = [
            pool.submit(
                place_call,
                to,
                keys,
                caller=f"1390000{n:04d}",
                local_port=5071 + n,
                talk_ms=2500 if keys == "" else 15000,
            )
            for n, (to, keys) in enumerate(calls)
        ]
        assert all(r.result().succeeded for r in runs)
    rows = controller.finished_calls(len(calls), timeout=60)
    until(
        lambda: value("sum(hotline_calls_total)") == len(rows),
        timeout=30,
        what="prometheus to have scraped every finished call",
    )
    time.sleep(3)  # a few more scrapes and rule evaluations over the finished load

    # The figures agree with the call log.
    by_outcome: dict[str, int] = {}
    for row in rows:
        by_outcome[row["outcome"]] = by_outcome.get(row["outcome"], 0) + 1
    for outcome, count in by_outcome.items():
        assert value(f'sum(hotline_calls_total{{outcome="{outcome}"}})') == count, outcome
    answered = [r for r in rows if r["dial_status"] == "ANSWER" and r["unit"]]
    assert value('sum(hotline_routed_calls_total{result="answered"})') == len(answered)
    assert value("sum(hotline_time_to_human_seconds_count)") == len([r for r in rows if r["target_answered_at"]])

    # Every expression is valid and returns data. Thresholds are dropped first: a healthy centre
    # fires no alert and shows no "overdue > 0" row, but the quantity each one watches must exist.
    empty = []
    for name, expr in [("dashboard", e) for e in dashboard_exprs()] + rule_exprs():
        query(expr)  # valid PromQL, as written
        watched = COMPARISON.sub("", expr)
        if not query(watched):
            empty.append((name, watched))
    assert not empty, "expressions without data:\n" + "\n".join(f"{n}: {e}" for n, e in empty)


def test_the_assessment_report_of_real_calls_counts_what_the_call_log_holds(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone], tmp_path: Path
) -> None:
    phones(DEPARTMENTS_PORT, talk_ms=1000)
    controller = start_controller()
    with ThreadPoolExecutor(2) as pool:
        runs = [
            pool.submit(place_call, to, keys, caller=f"1390000{n:04d}", local_port=5071 + n, talk_ms=15000)
            for n, (to, keys) in enumerate([("12345", "1"), ("12310", "")])
        ]
        assert all(r.result().succeeded for r in runs)
    controller.finished_calls(2)
    # Call records carry real timestamps (the simulated clock only steers decisions): report on
    # the local days around now.
    today = dt.datetime.now(LOCAL_TZ).date()
    hotline = str(REPO / ".venv" / "bin" / "hotline")
    common = [
        "--from",
        str(today - dt.timedelta(days=1)),
        "--to",
        str(today + dt.timedelta(days=1)),
        "--calllog",
        controller.env["HOTLINE_CALLLOG"],
    ]

    out = subprocess.run(
        [hotline, "report", *common, "--format", "json"], capture_output=True, text=True, check=True, cwd=REPO
    )
    report = json.loads(out.stdout)
    rows = {(u["unit"], u["mode"]): u for u in report["units"]}
    assert rows[("市公安局", "merge")]["total"]["routed"] == 1
    assert rows[("市公安局", "merge")]["total"]["answered"] == 1
    assert rows[("市编办", "transfer")]["direct"]["routed"] == 1
    assert len(report["ledger"]) == 50

    html = tmp_path / "report.html"
    subprocess.run([hotline, "report", *common, "--out", str(html)], capture_output=True, check=True, cwd=REPO)
    page = html.read_text(encoding="utf-8")
    assert "<svg" in page and "市公安局" in page and "http://" not in page and "https://" not in page
