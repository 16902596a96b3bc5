"""The benchmark itself keeps working: a few hundred calls through every part of `python -m bench`.

No performance thresholds here (CI machines differ and others share them); this proves that the
one command still calibrates SIPp, runs the dialplan baseline and the controller on the same
flow, reads back every figure it reports, and leaves Asterisk and the call log as it must.
The full run is a manual command (BENCHMARKS.md).
"""

from __future__ import annotations

from pathlib import Path

from bench.run import Options, run

from .conftest import Ari


def test_one_benchmark_run_measures_both_flows_and_writes_the_ab_table(asterisk: Ari, tmp_path: Path) -> None:
    opts = Options(
        window=12,
        rates_a=[6],
        rates_b=[6],
        rates_sipp=[6],
        calibrate=True,
        checks=False,
        max_minutes=4,
        out=tmp_path,
        manage_asterisk=False,
    )
    report = run(opts)

    calibration, a, b = report["calibration"], report["A"], report["B"]
    assert [s["placed"] for s in calibration["steps"]] == [72]
    for flow in (a, b):
        (step,) = flow["steps"]
        assert step["placed"] == step["planned"] == 72
        assert step["ok"] + step["failed_total"] == step["placed"]
        # Every measured call has its latencies: INVITE->200 from SIPp's partition, the key
        # press matched to the department's INVITE by caller number.
        assert step["ok"] > 0
        assert step["invite_to_200"]["n"] >= step["ok"]
        assert step["dtmf_to_invite"]["n"] >= step["ok"]
        assert step["cpu"]["asterisk"] > 0
        assert (flow["leftover_channels"], flow["leftover_bridges"]) == (0, 0)
    (b_step,) = b["steps"]
    assert b_step["answer_to_bridge"]["n"] >= b_step["ok"]
    assert b_step["cpu"]["controller"] > 0
    # What a call costs: CPU per call of each process, and the controller's ARI requests per call
    # (read from its /metrics around the step); A has no controller.
    assert b_step["cpu_ms_per_call"]["controller"] > 0 and b_step["cpu_ms_per_call"]["asterisk"] > 0
    assert b_step["ari_requests_per_call"] >= 3  # at least answer, a prompt and a dial per routed call
    assert a["steps"][0]["cpu_ms_per_call"]["asterisk"] > 0 and a["steps"][0]["ari_requests_per_call"] is None
    assert b["calllog_rows"] == b["calls_placed"] == 72
    assert b["controller_exit"] == 0 and b["controller_crashed_calls"] == 0
    assert b["rss_kib"]["start"] > 0 and b["rss_kib"]["end"] > 0

    # Whether the box was quiet is measured per step, and the table says if the run counts.
    for step in [*calibration["steps"], *a["steps"], *b["steps"]]:
        assert {"others", "steal", "loadavg_before", "loadavg_after"} <= set(step["cpu"])
    table = (Path(report["workdir"]) / "report.md").read_text(encoding="utf-8")
    assert ("**Valid run**" in table) == report["valid"] and ("**NOT a valid run**" in table) != report["valid"]
    assert "| A: pure dialplan |" in table and "| B: controller |" in table and "| **B/A** |" in table
    assert "| at the highest passing step | calls/s | Asterisk CPU ms per call | controller CPU ms per call |" in table


def test_the_recording_cost_run_measures_asterisk_per_call_with_recording_off_and_on(
    asterisk: Ari, tmp_path: Path
) -> None:
    from bench.recording_cost import CostOptions, run_recording_cost

    report = run_recording_cost(CostOptions(rate=2, window=5, talk_ms=12000, out=tmp_path, manage_asterisk=False))

    off, on = report["runs"]["off"], report["runs"]["on"]
    for each in (off, on):
        assert each["step"]["placed"] == 10 and each["connected"] == each["step"]["ok"] > 0
        assert each["asterisk_cpu_ms_per_call"] > 0 and each["controller_exit"] == 0
        assert (each["leftover_channels"], each["leftover_bridges"]) == (0, 0)
    # Only the `on` run records, every connected call once; its calls talk after the notice.
    assert off["recordings"] == 0 and on["recordings"] == on["connected"]
    assert 0 < on["talk_seconds_mean"] < off["talk_seconds_mean"]
    assert "asterisk_cpu_ms_per_call" in report["difference"]
    table = (Path(report["workdir"]) / "report.md").read_text(encoding="utf-8")
    assert "| off | 2 | 10 |" in table and "| on | 2 | 10 |" in table
    assert "others" in on["step"]["cpu"] and ("**NOT a valid run**" in table) != report["valid"]
    # The run's recordings are deleted with it: nothing of a benchmark stays on the recording disk.
    assert on["recorded_seconds"] > 0 and not Path(report["recording_directory"]).exists()


def test_the_variants_run_measures_each_dial_path_change_at_one_rate_and_leaves_the_shipped_password(
    asterisk: Ari, tmp_path: Path
) -> None:
    from bench.variants import VariantOptions, run_variants

    report = run_variants(VariantOptions(rate=2, window=5, out=tmp_path, manage_asterisk=False))

    assert set(report["runs"]) == {"A", "crypt", "plain", "dialplan"}
    for label in ("crypt", "plain", "dialplan"):
        run = report["runs"][label]
        step = run["step"]
        assert step["placed"] == 10 and step["failed_total"] == 0, label
        assert step["cpu_ms_per_call"]["asterisk"] > 0 and step["cpu_ms_per_call"]["controller"] > 0
        assert step["ari_requests_per_call"] > 0 and run["calllog_rows"] == 10 and run["controller_exit"] == 0
        assert (run["leftover_channels"], run["leftover_bridges"]) == (0, 0)
    # The dialplan path asks Asterisk fewer questions per call than the ARI path.
    assert (
        report["runs"]["dialplan"]["step"]["ari_requests_per_call"]
        < report["runs"]["plain"]["step"]["ari_requests_per_call"]
    )
    # The crypt comparison is put back: Asterisk checks the shipped (plain) password again.
    assert "password_format = plain" in (asterisk_etc() / "ari_users.conf").read_text()
    table = (Path(report["workdir"]) / "report.md").read_text(encoding="utf-8")
    assert "| crypt |" in table and "| dialplan |" in table and ("**NOT a valid run**" in table) != report["valid"]


def asterisk_etc() -> Path:
    from lab import manager

    return manager.Asterisk().root / "etc/hotline"
