"""monitoring/ against the code: promtool on the Prometheus config, the rules and their unit tests,
and every metric, label and label value that the rules and the Grafana dashboard use, checked
against `ivr.metrics.Metrics` — so renaming a metric or a label breaks the build, not the
supervisors' dashboard at 3 a.m.

promtool comes with Debian's prometheus package (`./hotlinectl setup` installs it). Without it
these tests fail: a check that silently does not run is no check.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from ivr.metrics import DIAL_RESULTS, MESSAGE_REASONS, OUTCOMES, UNIT_CALL_RESULTS, WEBHOOK_RESULTS, Metrics

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "monitoring"
PROMETHEUS_YML = MONITORING / "prometheus.yml"
ALERTS = MONITORING / "alerts.yml"
ALERTS_TEST = MONITORING / "alerts_test.yml"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "hotline.json"
PROVISIONING = MONITORING / "grafana" / "provisioning"

JOB = "hotline"
TARGET = "127.0.0.1:9345"
TARGET_LABELS = frozenset({"job", "instance"})  # added by Prometheus to every scraped series
DASHBOARD_DS_UIDS = {"${DS_PROMETHEUS}"}
DASHBOARD_DS_NAMES = {"Prometheus"}


# ---------------------------------------------------------------------------------------------
# promtool
# ---------------------------------------------------------------------------------------------
def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail(
            "promtool is not installed (it comes with Debian's `prometheus` package): "
            "run `./hotlinectl setup`, which installs it",
            pytrace=False,
        )
    return subprocess.run([exe, *args], cwd=REPO, capture_output=True, text=True, timeout=600, check=False)


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, (
        f"{' '.join(result.args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    )


def test_promtool_check_config() -> None:
    result = promtool("check", "config", str(PROMETHEUS_YML.relative_to(REPO)))
    assert_ok(result)
    assert "1 rule files found" in result.stdout  # the rule_files path resolves


def test_promtool_check_rules() -> None:
    assert_ok(promtool("check", "rules", str(ALERTS.relative_to(REPO))))


def test_promtool_rule_unit_tests() -> None:
    result = promtool("test", "rules", str(ALERTS_TEST.relative_to(REPO)))
    assert_ok(result)
    assert "SUCCESS" in result.stdout


def test_rule_unit_tests_evaluate_recording_rules_before_the_alerts_that_read_them() -> None:
    # Without group_eval_order promtool picks the group order at random per test case, and an
    # alert's $value is then sometimes 15 s stale: a test that fails one CI run in eight.
    groups = [g["name"] for g in yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]]
    order = yaml.safe_load(ALERTS_TEST.read_text(encoding="utf-8")).get("group_eval_order")
    assert order is not None, f"{ALERTS_TEST.name} has no group_eval_order"
    assert sorted(order) == sorted(groups), f"group_eval_order {order} must list every group of {ALERTS.name}: {groups}"
    assert order.index("hotline-recording") < order.index("hotline-alerts")


BREAKAGES = {
    "unbalanced parenthesis": (
        "sum by (unit) (rate(hotline_unit_calls_total[15m]))",
        "sum by (unit) (rate(hotline_unit_calls_total[15m])",
    ),
    "bad for duration": ("for: 5m", "for: 5 minutes"),
    "broken annotation template": ("{{ $labels.unit }} answers only", "{{ $labels.unit answers only"),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_promtool_check_rules_rejects_a_broken_copy(breakage: str, tmp_path: Path) -> None:
    """The check above is real: the same command fails on a copy with one mistake in it."""
    old, new = BREAKAGES[breakage]
    text = ALERTS.read_text(encoding="utf-8")
    assert old in text, f"the breakage {breakage!r} no longer applies to alerts.yml"
    broken = tmp_path / "alerts.yml"
    broken.write_text(text.replace(old, new, 1), encoding="utf-8")
    result = promtool("check", "rules", str(broken))
    assert result.returncode != 0, f"promtool accepted alerts.yml with a {breakage}:\n{result.stdout}"
    assert "FAILED" in result.stdout + result.stderr


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    """Grafana's PromQL goes through Prometheus' own parser too, as recording rules in a scratch file."""
    rules = [
        {"record": f"dashboard:query_{n}:check", "expr": expr}
        for n, (_where, expr) in enumerate(dashboard_queries(grafana_substituted=True))
    ]
    scratch = tmp_path / "dashboard_rules.yml"
    scratch.write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, allow_unicode=True), encoding="utf-8"
    )
    assert_ok(promtool("check", "rules", str(scratch)))


# ---------------------------------------------------------------------------------------------
# What the controller exports: every series name with its labels, from ivr.metrics
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Series:
    metric: str  # the name as rules write it, without a histogram's _bucket/_sum/_count
    labels: frozenset[str]


HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


@functools.cache
def exported() -> dict[str, Series]:
    """Series name -> Series, from `Metrics().registry.collect()`, labels including job/instance."""
    metrics = Metrics()

    class CallLog:  # the controller always watches its call log (ivr.controller.app)
        journal_pending = journaled_total = replayed_total = lost_total = failed_writes = 0

    metrics.watch_calllog(CallLog())
    # Label names are not in a family without samples, so take them from the wrappers; the
    # call log's families come from a collector and have no labels of their own.
    wrappers = {w._name: w for w in vars(metrics).values() if isinstance(w, MetricWrapperBase)}
    out: dict[str, Series] = {}
    for family in metrics.registry.collect():
        if family.name.startswith("hotline_calllog_"):
            own: frozenset[str] = frozenset()
        else:
            assert family.name in wrappers, f"{family.name}: not an attribute of Metrics"
            own = frozenset(wrappers[family.name]._labelnames)
        labels = own | TARGET_LABELS
        if family.type == "counter":
            out[family.name + "_total"] = Series(family.name + "_total", labels)
        elif family.type == "gauge":
            out[family.name] = Series(family.name, labels)
        elif family.type == "histogram":
            out[family.name + "_bucket"] = Series(family.name, labels | {"le"})
            out[family.name + "_sum"] = Series(family.name, labels)
            out[family.name + "_count"] = Series(family.name, labels)
        else:
            raise AssertionError(f"{family.name}: a {family.type}; teach test_monitoring.py its series names")
    return out


def metric_names() -> set[str]:
    """Names as rules write them (histograms without their suffixes)."""
    return {s.metric for s in exported().values()}


# Label values a matcher may name. From the code where the code has the list; the rest are the
# literals the call flow passes (ivr/call/books.py, ivr/controller/app.py) — a guard against typos in rules.
LABEL_VALUES: dict[tuple[str, str], frozenset[str]] = {
    ("hotline_calls_total", "outcome"): frozenset(OUTCOMES),
    ("hotline_routed_calls_total", "result"): frozenset(DIAL_RESULTS.values()) | {"failed"},
    ("hotline_unit_calls_total", "result"): frozenset(UNIT_CALL_RESULTS),
    ("hotline_webhook_deliveries_total", "result"): frozenset(WEBHOOK_RESULTS),
    ("hotline_messages_total", "reason"): frozenset(MESSAGE_REASONS),
    ("hotline_time_to_human_seconds", "kind"): frozenset({"department", "operator"}),
    ("hotline_overflow_steps_total", "step"): frozenset({"overflow", "operators", "message"}),
    ("hotline_operator_queue_wait_seconds", "result"): frozenset({"answered", "abandoned", "timed_out"}),
    ("hotline_routes_reloads_total", "result"): frozenset({"ok", "refused"}),
    ("hotline_survey_responses_total", "score"): frozenset({"1", "2", "3"}),
}


def test_label_values_known_to_the_checks_are_metrics() -> None:
    for metric, label in LABEL_VALUES:
        assert metric in metric_names(), metric
        series = next(s for s in exported().values() if s.metric == metric)
        assert label in series.labels, (metric, label)


# ---------------------------------------------------------------------------------------------
# A small PromQL reader: the grammar our rules and panels use, enough to know which labels each
# (sub)expression carries, so that `by (...)`, matchers, `on (...)`, `$labels.x` in an alert's
# annotations and `{{x}}` in a panel's legend can be checked against the metrics.
# ---------------------------------------------------------------------------------------------
_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<duration>(?:\d+(?:ms|[smhdwy]))+(?![\w.]))
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>==|!=|>=|<=|=~|!~|[-+*/%^<>=(){}\[\],:@])
""",
    re.VERBOSE,
)

PRECEDENCE = {
    "or": 1,
    "and": 2,
    "unless": 2,
    "==": 3,
    "!=": 3,
    ">": 3,
    "<": 3,
    ">=": 3,
    "<=": 3,
    "+": 4,
    "-": 4,
    "*": 5,
    "/": 5,
    "%": 5,
    "atan2": 5,
    "^": 6,
}
SET_OPERATORS = {"and", "or", "unless"}
AGGREGATIONS = {"sum", "min", "max", "avg", "count", "stddev", "stdvar", "group", "topk", "bottomk", "quantile"}
RANGE_FUNCTIONS = {
    "rate",
    "increase",
    "irate",
    "delta",
    "idelta",
    "deriv",
    "resets",
    "changes",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "last_over_time",
    "present_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "quantile_over_time",
}
SAME_LABELS_FUNCTIONS = {
    "abs",
    "ceil",
    "floor",
    "exp",
    "ln",
    "log2",
    "log10",
    "sqrt",
    "sgn",
    "round",
    "clamp",
    "clamp_min",
    "clamp_max",
    "sort",
    "sort_desc",
    "timestamp",
}


@dataclass(frozen=True)
class Value:
    kind: str  # scalar | string | vector | matrix
    labels: frozenset[str] = frozenset()
    text: str = ""  # a string literal's content


class PromQLError(Exception):
    pass


@dataclass
class Reader:
    """Reads one expression; `problems` lists what does not fit the metrics."""

    expr: str
    schema: Callable[[str], Series | None]
    tokens: list[tuple[str, str]] = field(default_factory=list)
    pos: int = 0
    problems: list[str] = field(default_factory=list)
    metrics: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        at = 0
        while at < len(self.expr):
            m = _TOKEN.match(self.expr, at)
            if m is None:
                raise PromQLError(f"cannot read {self.expr[at : at + 20]!r}")
            at = m.end()
            if m.lastgroup != "space":
                self.tokens.append((m.lastgroup or "", m.group()))

    # -- tokens ---------------------------------------------------------------------------------
    def peek(self, ahead: int = 0) -> str:
        i = self.pos + ahead
        return self.tokens[i][1] if i < len(self.tokens) else ""

    def take(self, kind: str | None = None) -> str:
        if self.pos >= len(self.tokens):
            raise PromQLError(f"unexpected end of {self.expr!r}")
        got_kind, text = self.tokens[self.pos]
        if kind is not None and got_kind != kind:
            raise PromQLError(f"expected a {kind}, got {text!r} in {self.expr!r}")
        self.pos += 1
        return text

    def expect(self, text: str) -> None:
        got = self.take()
        if got != text:
            raise PromQLError(f"expected {text!r}, got {got!r} in {self.expr!r}")

    def label_list(self) -> frozenset[str]:
        self.expect("(")
        names: list[str] = []
        while self.peek() != ")":
            names.append(self.take("ident"))
            if self.peek() == ",":
                self.take()
        self.expect(")")
        return frozenset(names)

    # -- grammar --------------------------------------------------------------------------------
    def read(self) -> Value:
        value = self.binary(0)
        if self.pos != len(self.tokens):
            raise PromQLError(f"unexpected {self.peek()!r} in {self.expr!r}")
        return value

    def binary(self, min_precedence: int) -> Value:
        lhs = self.unary()
        while (op := self.peek()) in PRECEDENCE and PRECEDENCE[op] >= min_precedence:
            self.take()
            if self.peek() == "bool":
                self.take()
            matching = group = None
            if self.peek() in ("on", "ignoring"):
                matching = (self.take(), self.label_list())
            if self.peek() in ("group_left", "group_right"):
                group = (self.take(), self.label_list() if self.peek() == "(" else frozenset())
            rhs = self.binary(PRECEDENCE[op] if op == "^" else PRECEDENCE[op] + 1)
            lhs = self.combine(op, lhs, rhs, matching, group)
        return lhs

    def unary(self) -> Value:
        if self.peek() in ("-", "+"):
            self.take()
            return self.unary()
        value = self.primary()
        while True:
            if self.peek() == "[":
                self.take()
                self.take("duration")
                if self.peek() == ":":  # subquery
                    self.take()
                    if self.peek() != "]":
                        self.take("duration")
                self.expect("]")
                if value.kind != "vector":
                    self.problems.append(f"a range of a {value.kind}")
                value = Value("matrix", value.labels)
            elif self.peek() == "offset":
                self.take()
                if self.peek() == "-":
                    self.take()
                self.take("duration")
            else:
                return value

    def primary(self) -> Value:
        kind, text = self.tokens[self.pos] if self.pos < len(self.tokens) else ("", "")
        if kind == "number":
            self.take()
            return Value("scalar")
        if kind == "string":
            self.take()
            return Value("string", text=text[1:-1])
        if text == "(":
            self.take()
            value = self.binary(0)
            self.expect(")")
            return value
        if kind == "ident":
            if text in ("Inf", "NaN", "inf", "nan"):
                self.take()
                return Value("scalar")
            if text in AGGREGATIONS:
                return self.aggregation()
            if self.peek(1) == "(":
                return self.call()
            return self.selector()
        raise PromQLError(f"unexpected {text!r} in {self.expr!r}")

    def selector(self) -> Value:
        name = self.take("ident")
        self.metrics.add(name)
        series = self.schema(name)
        if series is None:
            self.problems.append(f"unknown metric {name}")
        if self.peek() == "{":
            self.take()
            while self.peek() != "}":
                label, op, quoted = self.take("ident"), self.take("op"), self.take("string")
                if op not in ("=", "!=", "=~", "!~"):
                    raise PromQLError(f"bad matcher operator {op!r} in {self.expr!r}")
                if series is not None:
                    self.check_matcher(name, series, label, op, quoted[1:-1])
                if self.peek() == ",":
                    self.take()
            self.expect("}")
        return Value("vector", series.labels if series else frozenset())

    def check_matcher(self, name: str, series: Series, label: str, op: str, value: str) -> None:
        if label == "__name__":
            return
        if label not in series.labels:
            self.problems.append(f"{name} has no label {label!r} (it has {sorted(series.labels)})")
            return
        allowed = LABEL_VALUES.get((series.metric, label))
        if allowed is None or "$" in value:
            return
        if op in ("=", "!="):
            wanted = [value]
        elif re.fullmatch(r"[\w|]+", value):  # a plain alternation: a|b|c
            wanted = value.split("|")
        else:
            return
        for v in wanted:
            if v not in allowed:
                self.problems.append(f"{name}{{{label}{op}...}}: {v!r} is not one of {sorted(allowed)}")

    def aggregation(self) -> Value:
        name = self.take("ident")
        grouping = None
        if self.peek() in ("by", "without"):
            grouping = (self.take(), self.label_list())
        self.expect("(")
        if name in ("topk", "bottomk", "quantile"):
            self.binary(0)
            self.expect(",")
        arg = self.binary(0)
        self.expect(")")
        if grouping is None and self.peek() in ("by", "without"):
            grouping = (self.take(), self.label_list())
        if arg.kind != "vector":
            self.problems.append(f"{name}() of a {arg.kind}")
        if grouping is None:
            out: frozenset[str] = frozenset()
        else:
            how, labels = grouping
            missing = labels - arg.labels
            if missing:
                self.problems.append(
                    f"{name} {how} ({', '.join(sorted(labels))}): {sorted(missing)} not on its "
                    f"argument (which has {sorted(arg.labels)})"
                )
            out = labels if how == "by" else arg.labels - labels
        return Value("vector", arg.labels if name in ("topk", "bottomk") else out)

    def call(self) -> Value:
        name = self.take("ident")
        self.expect("(")
        args: list[Value] = []
        while self.peek() != ")":
            args.append(self.binary(0))
            if self.peek() == ",":
                self.take()
        self.expect(")")
        kinds = [a.kind for a in args]
        if name in RANGE_FUNCTIONS:
            if not args or kinds[-1] != "matrix":
                self.problems.append(f"{name}() wants a range vector, got {kinds}")
            return Value("vector", args[-1].labels if args else frozenset())
        if name in SAME_LABELS_FUNCTIONS:
            if not args or kinds[0] != "vector":
                self.problems.append(f"{name}() wants a vector first, got {kinds}")
            return Value("vector", args[0].labels if args else frozenset())
        if name == "histogram_quantile":
            if kinds != ["scalar", "vector"]:
                self.problems.append(f"histogram_quantile() wants (scalar, vector), got {kinds}")
            elif "le" not in args[1].labels:
                self.problems.append("histogram_quantile() of a vector without `le` (aggregate by le, use _bucket)")
            return Value("vector", args[1].labels - {"le"} if len(args) > 1 else frozenset())
        if name == "label_replace":
            if kinds != ["vector", "string", "string", "string", "string"]:
                self.problems.append(f"label_replace() arguments: {kinds}")
                return Value("vector")
            if args[3].text and args[3].text not in args[0].labels:
                self.problems.append(f"label_replace() from {args[3].text!r}, not on {sorted(args[0].labels)}")
            return Value("vector", args[0].labels | {args[1].text})
        if name in ("vector", "absent", "absent_over_time"):
            return Value("vector")
        if name in ("scalar", "time"):
            return Value("scalar")
        raise PromQLError(f"function {name}() is not known to test_monitoring.py")

    def combine(
        self,
        op: str,
        lhs: Value,
        rhs: Value,
        matching: tuple[str, frozenset[str]] | None,
        group: tuple[str, frozenset[str]] | None,
    ) -> Value:
        if lhs.kind == "scalar" and rhs.kind == "scalar" and op not in SET_OPERATORS:
            return Value("scalar")
        if {lhs.kind, rhs.kind} - {"scalar", "vector"} or (op in SET_OPERATORS and "scalar" in (lhs.kind, rhs.kind)):
            self.problems.append(f"{lhs.kind} {op} {rhs.kind}")
            return Value("vector")
        if "scalar" in (lhs.kind, rhs.kind):
            return Value("vector", lhs.labels if lhs.kind == "vector" else rhs.labels)
        if matching is not None:
            how, labels = matching
            if how == "on":
                for side, v in (("left", lhs), ("right", rhs)):
                    if labels - v.labels:
                        self.problems.append(
                            f"'{op} on ({', '.join(sorted(labels))})': the {side} side has no "
                            f"{sorted(labels - v.labels)} (it has {sorted(v.labels)})"
                        )
            left, right = (
                (labels & lhs.labels, labels & rhs.labels)
                if how == "on"
                else (lhs.labels - labels, rhs.labels - labels)
            )
        else:
            how, labels, left, right = "", frozenset(), lhs.labels, rhs.labels
        if op in SET_OPERATORS:
            if op != "or" and how != "on" and left != right:
                self.problems.append(
                    f"'{op}' matches on all labels but the sides differ: {sorted(left)} vs "
                    f"{sorted(right)}; say on (...)"
                )
            return Value("vector", lhs.labels & rhs.labels if op == "or" else lhs.labels)
        if group is not None:
            side, extra = group
            one, many = (rhs, lhs) if side == "group_left" else (lhs, rhs)
            if extra - one.labels:
                self.problems.append(f"{side}({', '.join(sorted(extra))}): not on the other side")
            return Value("vector", many.labels | extra)
        if how != "on" and left != right:
            self.problems.append(
                f"'{op}' matches on all labels but the sides differ: {sorted(left)} vs "
                f"{sorted(right)}; say on (...) or ignoring (...)"
            )
        return Value("vector", labels if how == "on" else left)


# ---------------------------------------------------------------------------------------------
# The rules and the dashboard, read with the metrics' schema
# ---------------------------------------------------------------------------------------------
def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rules() -> Iterator[dict[str, Any]]:
    for group in load_yaml(ALERTS)["groups"]:
        yield from group["rules"]


@dataclass
class RuleCheck:
    recorded: dict[str, Series]
    alerts: dict[str, list[frozenset[str]]]  # alert name -> output labels of each of its rules
    problems: list[str]
    metrics: set[str]


def schema_with(recorded: dict[str, Series]) -> Callable[[str], Series | None]:
    def schema(name: str) -> Series | None:
        if name == "up":
            return Series("up", TARGET_LABELS)
        return recorded.get(name) or exported().get(name)

    return schema


def read_expr(expr: str, schema: Callable[[str], Series | None]) -> tuple[Value, Reader]:
    reader = Reader(expr, schema)
    return reader.read(), reader


@functools.cache
def check_rules() -> RuleCheck:
    """Read every rule in file order (recording rules first become metrics for later rules)."""
    recorded: dict[str, Series] = {}
    alerts: dict[str, list[frozenset[str]]] = {}
    problems: list[str] = []
    metrics: set[str] = set()
    for rule in rules():
        name = rule.get("record") or rule["alert"]
        value, reader = read_expr(rule["expr"], schema_with(recorded))
        metrics |= reader.metrics
        problems += [f"{name}: {p}" for p in reader.problems]
        if value.kind != "vector":
            problems.append(f"{name}: a {value.kind}, not a vector")
        if "record" in rule:
            recorded[name] = Series(name, value.labels)
        else:
            alerts.setdefault(name, []).append(value.labels)
            have = value.labels | set(rule.get("labels", {}))
            for text in rule.get("annotations", {}).values():
                for label in re.findall(r"\$labels\.(\w+)", text):
                    if label not in have:
                        problems.append(f"{name}: annotations use $labels.{label}, the alert has {sorted(have)}")
    return RuleCheck(recorded, alerts, problems, metrics)


def load_dashboard() -> dict[str, Any]:
    with DASHBOARD.open(encoding="utf-8") as f:
        loaded: dict[str, Any] = json.load(f)
    return loaded


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row keeps its panels inside


GRAFANA_VARIABLES = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h", "unit": "市住建局"}


def substitute(expr: str) -> str:
    def value(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        assert name in GRAFANA_VARIABLES, f"dashboard variable ${name} unknown to test_monitoring.py: {expr}"
        return GRAFANA_VARIABLES[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)


def dashboard_queries(grafana_substituted: bool = False) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target."""
    out = []
    for panel in all_panels(load_dashboard()):
        for target in panel.get("targets", []):
            expr = target.get("expr", "")
            out.append(
                (f"panel {panel['title']!r} {target.get('refId')}", substitute(expr) if grafana_substituted else expr)
            )
    return out


def variable_query(variable: dict[str, Any]) -> str:
    query = variable.get("query")
    return str(query.get("query", "") if isinstance(query, dict) else query or "")


# ---------------------------------------------------------------------------------------------
# Names and labels against ivr.metrics
# ---------------------------------------------------------------------------------------------
HOTLINE_NAME = re.compile(r"\bhotline_[a-z0-9_]+")


def referenced_names(text: str) -> set[str]:
    names = set()
    for name in HOTLINE_NAME.findall(text):
        base = next((name[: -len(s)] for s in HISTOGRAM_SUFFIXES if name.endswith(s)), name)
        names.add(base if base in metric_names() and name in exported() else name)
    return names


def test_every_metric_in_the_rules_is_exported() -> None:
    used = set().union(*(referenced_names(rule["expr"]) for rule in rules()))
    assert used, "no hotline_* metric found in alerts.yml"
    assert used <= metric_names(), (
        f"alerts.yml uses metrics ivr.metrics does not export: {sorted(used - metric_names())}"
    )


def test_every_metric_in_the_dashboard_is_exported() -> None:
    dashboard = load_dashboard()
    texts = [expr for _where, expr in dashboard_queries()]
    texts += [variable_query(v) for v in dashboard["templating"]["list"] if v["type"] == "query"]
    used = set().union(*(referenced_names(t) for t in texts))
    assert used, "no hotline_* metric found in the dashboard"
    assert used <= metric_names(), (
        f"the dashboard uses metrics ivr.metrics does not export: {sorted(used - metric_names())}"
    )


def test_rules_use_only_labels_the_metrics_have() -> None:
    check = check_rules()
    assert not check.problems, "alerts.yml does not fit ivr.metrics:\n" + "\n".join(check.problems)


def test_dashboard_uses_only_labels_the_metrics_have() -> None:
    schema = schema_with(check_rules().recorded)
    problems = []
    dashboard = load_dashboard()
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            where = f"panel {panel['title']!r} {target.get('refId')}"
            value, reader = read_expr(substitute(target["expr"]), schema)
            problems += [f"{where}: {p}" for p in reader.problems]
            for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")):
                if label not in value.labels:
                    problems.append(f"{where}: legend {{{{{label}}}}} but the query has {sorted(value.labels)}")
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        m = re.fullmatch(r"\s*label_values\(\s*([\w:]+)\s*,\s*(\w+)\s*\)\s*", variable_query(variable))
        assert m, f"variable {variable['name']}: not a label_values(metric, label) query"
        series = schema(m.group(1))
        if series is None or m.group(2) not in series.labels:
            problems.append(f"variable {variable['name']}: {m.group(1)} has no label {m.group(2)}")
    assert not problems, "the dashboard does not fit ivr.metrics:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("rate(hotline_call_total[5m])", "unknown metric hotline_call_total"),
        ('hotline_calls_total{result="answered"}', "hotline_calls_total has no label 'result'"),
        ("sum by (unit) (rate(hotline_calls_total[5m]))", "['unit'] not on its argument"),
        ('hotline_routed_calls_total{result="noanswer"}', "'noanswer' is not one of"),
        ('hotline_calls_total{outcome=~"connected|operators"}', "'operators' is not one of"),
        ("histogram_quantile(0.9, sum by (unit) (rate(hotline_answer_seconds_bucket[5m])))", "without `le`"),
        ("histogram_quantile(0.9, rate(hotline_answer_seconds[5m]))", "unknown metric hotline_answer_seconds"),
        (
            "sum by (unit) (rate(hotline_messages_total[5m])) / sum(rate(hotline_messages_total[5m]))",
            "the sides differ",
        ),
        (
            "hotline:unit_answer_ratio:rate15m < 0.8 and on (kind) hotline:unit_routed_attempts:increase15m >= 5",
            "has no ['kind']",
        ),
        ("hotline:unit_answer_ratio:rate1h", "unknown metric hotline:unit_answer_ratio:rate1h"),
    ],
)
def test_the_label_check_catches(expr: str, problem: str) -> None:
    """The static checks are real: each of these mistakes is reported."""
    _value, reader = read_expr(expr, schema_with(check_rules().recorded))
    assert any(problem in p for p in reader.problems), reader.problems


def test_the_name_check_strips_only_histogram_suffixes() -> None:
    assert referenced_names("rate(hotline_answer_seconds_bucket[5m])") == {"hotline_answer_seconds"}
    assert referenced_names("hotline_calls_total_count") == {"hotline_calls_total_count"}  # not a histogram
    assert not referenced_names("hotline_calls_total_count") <= metric_names()


def test_every_recording_rule_is_shown_or_alerted_on() -> None:
    check = check_rules()
    used = set(check.metrics)
    for _where, expr in dashboard_queries(grafana_substituted=True):
        used |= read_expr(expr, schema_with(check.recorded))[1].metrics
    assert set(check.recorded) <= used, f"recorded but never used: {sorted(set(check.recorded) - used)}"


# ---------------------------------------------------------------------------------------------
# Rules and their tests: shape
# ---------------------------------------------------------------------------------------------
EXPECTED_ALERTS = {
    "HotlineUnitAnswerRateLow",
    "HotlineQueueWaitLong",
    "HotlineControllerDown",
    "HotlineAriDisconnected",
    "HotlineRoutesReloadRefused",
    "HotlineTicketsOverdue",
    "HotlineConnectionRateLow",
    "HotlineWebhookFailing",
    "HotlineCallLogJournaling",
    "HotlineCallLogRecordsLost",
    "HotlineNobodyAnswering",
    "HotlineCallbacksOverdue",
    "HotlineCallsTurnedAway",
    "HotlineHolidayCalendarEnding",
    "HotlineHolidayCalendarProvisional",
    "HotlineRecordingFailing",
}


def test_alerts_have_for_severity_and_annotations() -> None:
    alerts = [r for r in rules() if "alert" in r]
    assert {r["alert"] for r in alerts} == EXPECTED_ALERTS
    for rule in alerts:
        assert "for" in rule, rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"].strip() and rule["annotations"]["description"].strip(), rule["alert"]
    assert check_rules().alerts["HotlineTicketsOverdue"] == [frozenset({"unit"})]  # per unit
    assert check_rules().alerts["HotlineUnitAnswerRateLow"] == [frozenset({"unit"})]


def test_recording_rules_follow_the_naming_convention() -> None:
    for rule in rules():
        if "record" in rule:
            assert re.fullmatch(r"hotline:[a-z0-9_]+:[a-z0-9_]+", rule["record"]), rule["record"]


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in load_yaml(ALERTS_TEST)["tests"]:
        for test in case.get("alert_rule_test", []):
            (fired if test.get("exp_alerts") else quiet).add(test["alertname"])
    assert fired == EXPECTED_ALERTS, f"never shown firing: {sorted(EXPECTED_ALERTS - fired)}"
    assert quiet == EXPECTED_ALERTS, f"never shown not firing: {sorted(EXPECTED_ALERTS - quiet)}"
    assert load_yaml(ALERTS_TEST)["rule_files"] == [ALERTS.name]


# ---------------------------------------------------------------------------------------------
# prometheus.yml and Grafana provisioning
# ---------------------------------------------------------------------------------------------
def test_prometheus_scrapes_the_controller() -> None:
    config = load_yaml(PROMETHEUS_YML)
    [job] = [j for j in config["scrape_configs"] if j["job_name"] == JOB]
    assert job["scrape_interval"] == "5s"
    assert [t for sc in job["static_configs"] for t in sc["targets"]] == [TARGET]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert config["rule_files"] == [ALERTS.name]  # relative to prometheus.yml
    assert "evaluation_interval" in config["global"]
    assert re.search(r"scrape_interval: 5s +#.*production", PROMETHEUS_YML.read_text(encoding="utf-8"))


def test_grafana_provisioning() -> None:
    [ds] = load_yaml(PROVISIONING / "datasources" / "prometheus.yml")["datasources"]
    assert (ds["type"], ds["url"], ds["name"]) == ("prometheus", "http://127.0.0.1:9090", "Prometheus")
    [provider] = load_yaml(PROVISIONING / "dashboards" / "hotline.yml")["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]


# ---------------------------------------------------------------------------------------------
# The dashboard: shape
# ---------------------------------------------------------------------------------------------
def rows_and_members(dashboard: dict[str, Any]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    out: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            out.append((panel, list(panel.get("panels", []))))
        else:
            assert out, f"panel {panel['title']!r} comes before the first row"
            out[-1][1].append(panel)
    return out


def test_dashboard_shape() -> None:
    dashboard = load_dashboard()
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard["uid"] and dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    unit = variables["unit"]
    assert unit["type"] == "query"
    assert variable_query(unit) == "label_values(hotline_routed_calls_total, unit)"

    rows = rows_and_members(dashboard)
    centre = [members for row, members in rows if row["title"] == "12345 centre"]
    assert len(centre) == 1 and not [row for row, _ in rows if row["title"] == "12345 centre"][0].get("repeat")
    unit_rows = [(row, members) for row, members in rows if row.get("repeat") == "unit"]
    assert len(unit_rows) == 1, "one row repeated per unit"

    def titled(members: list[dict[str, Any]], *words: str) -> None:
        titles = [p["title"].lower() for p in members]
        assert any(all(w in t for w in words) for t in titles), f"no panel about {words} in {titles}"

    centre_panels = centre[0]
    titled(centre_panels, "calls per minute", "outcome")
    titled(centre_panels, "answered %")
    titled(centre_panels, "queue")
    titled(centre_panels, "active calls")
    titled(centre_panels, "ari connected")
    titled(centre_panels, "time to a human")
    queue = next(p for p in centre_panels if "queue" in p["title"].lower())
    assert {"hotline_operator_queue_length", "hotline:queue_wait_seconds_p90:rate15m"} <= {
        m for t in queue["targets"] for m in read_expr(t["expr"], schema_with(check_rules().recorded))[1].metrics
    }

    row, unit_panels = unit_rows[0]
    assert "$unit" in row["title"]
    for words in (("volume",), ("answer rate",), ("time to answer", "p50", "p90"), ("satisfaction",)):
        titled(unit_panels, *words)
    for panel in unit_panels:
        for target in panel["targets"]:
            assert 'unit=~"$unit"' in target["expr"], f"{panel['title']}: not filtered to the row's unit"
    satisfaction = next(p for p in unit_panels if "satisfaction" in p["title"].lower())
    shown = {
        m
        for t in satisfaction["targets"]
        for m in read_expr(substitute(t["expr"]), schema_with(check_rules().recorded))[1].metrics
    }
    assert shown == {"hotline:unit_survey_satisfied_ratio:rate1h", "hotline:unit_survey_score_avg:rate1h"}


def test_every_panel_has_a_datasource_and_a_query() -> None:
    dashboard = load_dashboard()
    ids = []
    for panel in all_panels(dashboard):
        ids.append(panel["id"])
        if panel["type"] == "row":
            assert not panel.get("targets"), f"row {panel['title']!r} has queries"
            continue
        ds = panel.get("datasource")
        assert ds.get("uid") in DASHBOARD_DS_UIDS if isinstance(ds, dict) else ds in DASHBOARD_DS_NAMES, (
            f"panel {panel['title']!r}: datasource {ds!r}"
        )
        targets = panel.get("targets") or []
        assert targets and all(str(t.get("expr", "")).strip() for t in targets), (
            f"panel {panel['title']!r}: a target without a query"
        )
        for target in targets:
            assert target.get("datasource", ds) == ds, f"panel {panel['title']!r}: target on another datasource"
        assert len({t["refId"] for t in targets}) == len(targets), panel["title"]
    assert len(ids) == len(set(ids)), "panel ids are not unique"


def test_dashboard_panels_do_not_overlap() -> None:
    taken: dict[tuple[int, int], str] = {}
    for panel in load_dashboard()["panels"]:
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in taken, f"{panel['title']!r} overlaps {taken[(x, y)]!r}"
                taken[(x, y)] = panel["title"]


def test_readme_explains_every_alert_and_recording_rule() -> None:
    readme = (MONITORING / "README.md").read_text(encoding="utf-8")
    for name in EXPECTED_ALERTS:
        assert f"**{name}**" in readme, f"monitoring/README.md does not say what to do for {name}"
    for name in check_rules().recorded:
        short = name.replace("_p90:", "_p50:")  # the README lists p50/p90 pairs on one line
        assert name in readme or short in readme, f"monitoring/README.md does not list {name}"
