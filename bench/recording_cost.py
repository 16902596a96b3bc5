"""What recording a call costs Asterisk (全程录音, issue 19): the controller flow with recording off, then on.

    .venv/bin/python -m bench --recording-cost [--cost-rate 5] [--window 60] [--cost-talk-ms 15000]

Two runs of the same fixed-rate step (bench.load.run_step), each on a fresh controller: `off`
with the shipped routes.yaml (`record: off`), `on` with `record: on` (every answered leg is
recorded by MixMonitor after the recording notice), into a directory of this run's own that is
deleted at the end. Both the citizen and the department speak the whole call (SIPp's speech
sample looped as RTP): MixMonitor writes the audio that passes, so silent legs would cost it
nothing and understate the cost.

The citizen stays `talk_ms` after pressing 1 (long enough for the 4.4 s notice, the ringing and
talk), then hangs up, in both runs: the `on` calls therefore talk about 4.4 s less than the `off`
ones (the notice comes before the ringing). What is reported, per run: Asterisk's (and the
controller's) CPU-seconds over the step divided by the calls placed, the mean talk per connected
call from the call log, the recordings kept; and the difference, per call and per recorded
talk-minute. A few calls/s for a short window is a smoke test; the figure for BENCHMARKS.md needs
a quiet box and a full window: a run during which other processes used more than 10 % of a
core is reported NOT valid (bench.quiet) and `python -m bench` exits 3.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import quiet
from bench.load import SCENARIOS, Endpoints, run_step
from bench.run import _finish_controller, _print_step, begin
from ivr.recording.store import asterisk_root, host_path
from lab import processes as lab
from lab.sipp.speech import speaking

NOTICE_SECONDS = 4.4  # recordings/voice recording-notice, played before the ringing when recording is on
SPEAK_AFTER_KEY_MS = 600  # the citizen starts speaking once its key (RFC 2833) is sent


@dataclass
class CostOptions:
    rate: float = 5.0  # calls/s in both runs
    window: float = 60.0  # seconds of load per run
    talk_ms: int = 15000  # key press -> the citizen's BYE
    out: Path = lab.REPO / "var" / "bench"
    manage_asterisk: bool = True  # restart it with dialplan/ at the start, stop it at the end
    runs: tuple[str, ...] = field(default=("off", "on"))


def routes_with_recording(out: Path, directory: str) -> Path:
    """The shipped routes.yaml with `record: on` into `directory` (Asterisk's path)."""
    text = (lab.REPO / "routes.yaml").read_text(encoding="utf-8")
    for old, new in (
        ("  record: off ", "  record: on  "),
        ("  directory: /var/spool/asterisk/monitor/hotline ", f"  directory: {directory} "),
    ):
        if old not in text:
            raise ValueError(f"routes.yaml: '{old.strip()}' not found: the recording section changed")
        text = text.replace(old, new, 1)
    out.write_text(text, encoding="utf-8")
    return out


def speaking_citizen(workdir: Path, speech: Path) -> Path:
    """bench/sipp/citizen.xml that speaks from just after its key press until it hangs up."""
    text = (SCENARIOS / "citizen.xml").read_text(encoding="utf-8")
    talk = '<pause milliseconds="TALK_MS"/>'
    if talk not in text:
        raise ValueError("bench/sipp/citizen.xml: no TALK_MS pause to speak in")
    speak = (
        f'<pause milliseconds="{SPEAK_AFTER_KEY_MS}"/>'
        f'<nop><action><exec rtp_stream="{speech},-1,8"/></action></nop>{talk}'
    )
    out = workdir / "citizen-speaks.xml"
    out.write_text(text.replace(talk, speak, 1), encoding="utf-8")
    return out


def run_recording_cost(opts: CostOptions) -> dict[str, Any]:
    report, workdir, ast_pid, ari = begin("recording-cost", opts)
    directory = f"/var/spool/asterisk/monitor/bench-{workdir.name.removeprefix('recording-cost-')}"
    speech = workdir / "speech.alaw"
    citizen = speaking_citizen(workdir, speech)
    department = speaking(SCENARIOS / "department.xml", workdir / "department-speaks.xml", speech)
    recorded_here = host_path(asterisk_root({}, lab.STATE), directory)
    report["recording_directory"] = str(recorded_here)  # deleted at the end: a benchmark keeps no recordings
    try:
        for i, label in enumerate(opts.runs):
            routes = lab.REPO / "routes.yaml"
            if label == "on":
                routes = routes_with_recording(workdir / "routes-recording-on.yaml", directory)
            report["runs"][label] = _one_run(label, i, routes, opts, workdir, citizen, department, ast_pid, ari)
        if {"off", "on"} <= report["runs"].keys():
            report["difference"] = difference(report["runs"]["off"], report["runs"]["on"])
    except Exception as exc:  # keep what was measured; say what broke
        report["error"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if opts.manage_asterisk:
            lab.stop_asterisk()
        shutil.rmtree(recorded_here, ignore_errors=True)
        report["finished"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
        quiet.judge(report, [run["step"] for run in report["runs"].values()])
        (workdir / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str))
        (workdir / "report.md").write_text(markdown(report), encoding="utf-8")
    return report


def _one_run(
    label: str,
    i: int,
    routes: Path,
    opts: CostOptions,
    workdir: Path,
    citizen: Path,
    department: Path,
    ast_pid: int,
    ari: lab.Ari,
) -> dict[str, Any]:
    ctl = lab.ControllerProcess(workdir / f"controller-{label}", routes=routes)
    t0 = time.time()
    pid = ctl.start()
    step = run_step(
        f"recording-{label}@{opts.rate:g}",
        opts.rate,
        max(1, int(opts.rate * opts.window)),
        workdir / f"step-{label}",
        Endpoints("127.0.0.1", sip_port=5230, media_port=7300),  # one run at a time: the same ports
        caller_prefix=f"14{i}0",
        sample=quiet.sampler({"asterisk": ast_pid, "controller": pid}),
        scenario=citizen,
        talk_ms=opts.talk_ms - SPEAK_AFTER_KEY_MS,  # the citizen's scenario pauses that long before it speaks
        phone_scenario=department,
    )
    _print_step(step)
    time.sleep(2)  # the call log's last writes of the step
    rows = [r for r in ctl.rows(t0) if r["talk_seconds"]]
    out: dict[str, Any] = {"step": step.summary(), "connected": len(rows)}
    if label == "on":  # the controller finishes each file a moment after its call: wait for the rows
        deadline = time.monotonic() + 30
        while _recordings(ctl.calllog)[0] < len(rows) and time.monotonic() < deadline:
            time.sleep(0.5)
    out["recordings"], out["recorded_seconds"] = _recordings(ctl.calllog)
    out["talk_seconds_mean"] = round(sum(r["talk_seconds"] for r in rows) / len(rows), 2) if rows else 0.0
    for name in ("asterisk", "controller"):
        cpu_seconds = step.cpu.get(name, 0.0) / 100 * step.seconds
        out[f"{name}_cpu_seconds"] = round(cpu_seconds, 2)
        out[f"{name}_cpu_ms_per_call"] = round(1000 * cpu_seconds / step.placed, 1) if step.placed else None
    _finish_controller(ctl, out, ari, t0)
    return out


def _recordings(calllog: Path) -> tuple[int, float]:
    """(recordings kept, their seconds) in a run's call log."""
    if not calllog.exists():
        return 0, 0.0
    db = sqlite3.connect(calllog, timeout=10)
    try:
        n, seconds = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(seconds), 0) FROM recordings WHERE kind = 'call'"
        ).fetchone()
    except sqlite3.OperationalError:  # no recordings table yet
        return 0, 0.0
    finally:
        db.close()
    return int(n), round(float(seconds), 1)


def difference(off: dict[str, Any], on: dict[str, Any]) -> dict[str, Any]:
    """What recording adds: Asterisk CPU per call, and per minute of recorded talk."""
    per_call_off, per_call_on = off["asterisk_cpu_ms_per_call"], on["asterisk_cpu_ms_per_call"]
    out: dict[str, Any] = {
        "asterisk_cpu_ms_per_call": (
            None if per_call_off is None or per_call_on is None else round(per_call_on - per_call_off, 1)
        )
    }
    if per_call_off and per_call_on and on["recorded_seconds"] and on["step"]["placed"]:
        extra_seconds = (per_call_on - per_call_off) / 1000 * on["step"]["placed"]
        out["asterisk_cpu_ms_per_recorded_minute"] = round(1000 * extra_seconds / (on["recorded_seconds"] / 60), 1)
    return out


def markdown(r: dict[str, Any]) -> str:
    lines = quiet.preamble("Recording cost run", r) + [
        "| recording | calls/s | placed | ok | failed | connected | mean talk s | recordings (s) | "
        "Asterisk CPU ms/call | controller CPU ms/call |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, run in r["runs"].items():
        s = run["step"]
        lines.append(
            f"| {label} | {s['rate']:g} | {s['placed']} | {s['ok']} | {s['failed_total']} | {run['connected']} | "
            f"{run['talk_seconds_mean']} | {run['recordings']} ({run['recorded_seconds']}) | "
            f"{run['asterisk_cpu_ms_per_call']} | {run['controller_cpu_ms_per_call']} |"
        )
    diff = r.get("difference")
    if diff and diff.get("asterisk_cpu_ms_per_call") is not None:
        lines += [
            "",
            f"Recording on adds {diff['asterisk_cpu_ms_per_call']:.1f} ms of Asterisk CPU per call"
            + (
                f" ({diff['asterisk_cpu_ms_per_recorded_minute']:.1f} ms per recorded talk-minute)"
                if "asterisk_cpu_ms_per_recorded_minute" in diff
                else ""
            )
            + f"; the `on` calls also play the {NOTICE_SECONDS} s notice and talk that much less.",
        ]
    if r.get("error"):
        lines += ["", f"Error: {r['error']}"]
    return "\n".join(lines) + "\n"
