"""The benchmark's report states what one call costs in each flow: CPU per call and ARI requests per call."""

from __future__ import annotations

from typing import Any

from bench import report
from bench.load import StepResult
from bench.report import markdown

MACHINE = {"cpu": "test cpu", "cores": 2, "mem_gib": 4, "kernel": "6", "sipp": "SIPp", "python": "3.11"}


def step(label: str, rate: float, placed: int, seconds: float, cpu: dict[str, float], ari: int | None = None) -> Any:
    return StepResult(
        label, rate, planned=placed, placed=placed, ok=placed, seconds=seconds, cpu=cpu, ari_requests=ari
    ).summary()


def test_a_steps_cpu_is_shared_out_over_its_calls_and_its_requests_counted_per_call() -> None:
    s = step("B@50", 50, placed=3000, seconds=60, cpu={"asterisk": 90.0, "controller": 25.0, "others": 3.0}, ari=18000)

    # 90 % of a core for 60 s = 54 000 ms over 3 000 calls
    assert s["cpu_ms_per_call"] == {"asterisk": 18.0, "controller": 5.0}
    assert s["ari_requests_per_call"] == 6.0


def test_a_step_without_a_controller_count_has_no_requests_per_call() -> None:
    assert step("A@50", 50, placed=3000, seconds=60, cpu={"asterisk": 50.0})["ari_requests_per_call"] is None


def test_the_report_states_each_flows_ceiling_and_what_a_call_costs_there() -> None:
    report = {
        "started": "s",
        "finished": "f",
        "machine": {**MACHINE, "loadavg_at_start": ["0.01", "0.02", "0.03"]},
        "valid": True,
        "ratio_b_over_a": 0.5,
        "A": {
            "max_rate": 100,
            "leftover_channels": 0,
            "leftover_bridges": 0,
            "steps": [step("A@100", 100, 6000, 60, {"asterisk": 100.0}), step("A@120", 120, 7000, 60, {})],
        },
        "B": {
            "max_rate": 50,
            "leftover_channels": 0,
            "leftover_bridges": 0,
            "calllog_rows": 3000,
            "calls_placed": 3000,
            "steps": [step("B@50", 50, 3000, 60, {"asterisk": 90.0, "controller": 25.0}, ari=18000)],
        },
    }
    report["A"]["steps"][1]["passed"] = False

    text = markdown(report)

    assert "| A: pure dialplan | 100 | 10.0 | 0 (none) | 0 (none) |" in text
    # B's only step passed: its ceiling is not known, and the table says so.
    assert "| B: controller | 50 (its highest step tried passed: not its ceiling) | 18.0 | 5.0 | 6.0 |" in text
    assert "CPU ms per call (controller / asterisk) | ARI requests per call |" in text


def test_a_steps_cpu_column_shows_unattributed_kernel_time_apart_from_others() -> None:
    s = step("A@60", 60, placed=3600, seconds=60, cpu={"asterisk": 61.0, "others": 2.0, "unattributed": 19.0})
    row = report._row("A@60", s, ("asterisk",))
    assert "asterisk 61 %, others 2 %, unattributed 19 %" in row
    assert s["cpu_ms_per_call"] == {"asterisk": 10.17}  # never charged to a measured process
