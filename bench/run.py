"""The whole benchmark in one run: calibrate SIPp, ramp A (dialplan) and B (controller), check B.

    calibrate  SIPp citizens against a SIPp phone directly (no Asterisk): the generator's own
               ceiling on these shared cores
    A          the citizen flow in pure dialplan ([bench-baseline], endpoint "bench", 127.0.0.3)
    B          the same flow through the controller (12345 from the carrier, routes.yaml, call log)
    ramp       each flow: fixed-rate steps (RFC 7502 style), rising until a step fails (>= 0.5 %
               failed calls, a SIPp watchdog trip, or calls not all placed); the max is the
               highest passing rate
    B checks   at 80 % of B's max: latencies; then `endurance_calls` more calls at 80 % on the
               same controller for its RSS (after the ramp vs at the end); at 150 % for
               `overload_seconds` on a fresh controller: no crash, refused vs silent calls, then
               a recovery step at 50 %
    after      channels and bridges left in Asterisk; call-log rows vs calls placed

Every load targets 127.0.0.1 and is bounded in calls (SIPp -m) and time (SIPp -timeout and the
run's `max_minutes`).
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import subprocess
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bench import profile, quiet
from bench.load import CALL_SECONDS, Endpoints, StepResult, dist, run_step
from ivr import privacy
from lab import processes as lab
from lab.events import matching

RAMP = (40, 60, 80, 100, 120, 140, 160, 180, 200, 240)


@dataclass
class Options:
    window: float = 60.0  # seconds of load per step
    # Both flows rise until a step fails, up past what this box has carried (A passed 160 calls/s on
    # a quiet run, issue 21): a ceiling is only known from a failed step above it.
    rates_a: list[float] = field(default_factory=lambda: list(RAMP))
    rates_b: list[float] = field(default_factory=lambda: list(RAMP))
    calibrate: bool = True
    rates_sipp: list[float] = field(default_factory=lambda: [40, 60, 80, 100])  # calibration steps
    calibration_window: float = 30.0
    checks: bool = True  # B's 80 % / 150 % / recovery / endurance checks
    overload_seconds: float = 120.0
    endurance_calls: int = 10_000
    max_minutes: float = 50.0
    out: Path = lab.REPO / "var" / "bench"
    manage_asterisk: bool = True  # restart it with dialplan/ at the start, stop it at the end
    profile: bool = False  # py-spy the controller during B's ramp (bench.profile)
    # 0: the overload check runs with default settings (adaptive admission, issue 21 item 4); > 0: with
    # HOTLINE_MAX_CALL_RATE at this share of B's max instead (the fixed-rate override)
    admission_share: float = 0.0


class Budget:
    def __init__(self, minutes: float) -> None:
        self.deadline = time.monotonic() + minutes * 60

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def allows(self, seconds: float) -> bool:
        return self.left() > seconds


def _calls(rate: float, window: float) -> int:
    return max(1, int(rate * window))


def _step_cost(window: float) -> float:
    return window + CALL_SECONDS + 25


def ramp(
    name: str,
    rates: list[float],
    opts: Options,
    budget: Budget,
    ep: Endpoints,
    workdir: Path,
    prefix_digit: str,
    sampler: Any,
    after_step: Any = None,
) -> tuple[float, list[StepResult]]:
    """Rising fixed-rate steps until one fails; (highest passing rate, steps)."""
    steps: list[StepResult] = []
    best = 0.0
    for i, rate in enumerate(rates):
        if not budget.allows(_step_cost(opts.window)):
            print(f"bench: {name}: time budget reached before {rate} calls/s", flush=True)
            break
        result = run_step(
            f"{name}@{rate:g}",
            rate,
            _calls(rate, opts.window),
            workdir / f"{name}-{i:02d}-{rate:g}",
            ep,
            caller_prefix=f"1{prefix_digit}{i:02d}",
            sample=sampler,
        )
        if after_step:
            after_step(result)
        steps.append(result)
        _print_step(result)
        if result.watchdog:
            result.notes.append("SIPp watchdog tripped: step discarded (the generator, not the target, lagged)")
            break
        if not result.passed():
            break
        best = rate
    return best, steps


def _print_step(r: StepResult) -> None:
    print(
        f"bench: {r.label}: placed {r.placed}/{r.planned} ok {r.ok} failed {r.failed_total} {dict(r.failed)} "
        f"retrans {r.retransmissions} conc {r.max_concurrent} watchdog {r.watchdog} "
        f"inv->200 p99 {r.invite_to_200.get('p99')} ms dtmf->inv p99 {r.dtmf_to_invite.get('p99')} ms "
        f"cpu {r.cpu}",
        flush=True,
    )


def run(opts: Options) -> dict[str, Any]:
    started = dt.datetime.now().astimezone()
    workdir = opts.out / started.strftime("%Y%m%dT%H%M%S")
    workdir.mkdir(parents=True, exist_ok=True)
    budget = Budget(opts.max_minutes)
    report: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "workdir": str(workdir),
        "options": {k: str(v) for k, v in opts.__dict__.items()},
        "machine": machine(),
    }
    if opts.manage_asterisk:
        lab.restart_asterisk()
    ast_pid = lab.asterisk_pid()
    ari = lab.Ari()
    report["machine"]["asterisk"] = lab.asterisk_version()
    try:
        if opts.calibrate:
            # SIPp against SIPp: the citizen calls a SIPp phone on 5081 directly.
            ep = Endpoints(
                "127.0.0.1",
                target="127.0.0.1:5081",
                phone_port=5081,
                sip_port=5210,
                media_port=7100,
                phone_media_port=7500,
            )
            cal = Options(**{**opts.__dict__, "window": min(opts.window, opts.calibration_window)})
            best, steps = ramp("sipp", opts.rates_sipp, cal, budget, ep, workdir, "9", quiet.sampler({}))
            top = max(opts.rates_sipp)
            report["calibration"] = {
                "max_rate": best,
                "ceiling_reached": best < top,
                "steps": [s.summary() for s in steps],
            }

        # A: the dialplan baseline.
        ep_a = Endpoints("127.0.0.3", sip_port=5220, media_port=7200)
        best_a, steps_a = ramp(
            "A", opts.rates_a, opts, budget, ep_a, workdir, "1", quiet.sampler({"asterisk": ast_pid})
        )
        report["A"] = {"max_rate": best_a, "steps": [s.summary() for s in steps_a]}
        report["A"]["leftover_channels"], report["A"]["leftover_bridges"] = ari.leftovers()

        # B: the controller.
        report["B"] = run_b(opts, budget, workdir, ast_pid, ari)
    except Exception as exc:  # keep what was measured; say what broke
        report["error"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if opts.manage_asterisk:
            lab.stop_asterisk()
        _write(report, workdir)
    return report


def begin(prefix: str, opts: Any) -> tuple[dict[str, Any], Path, int, lab.Ari]:
    """A fixed-rate comparison's start (bench.variants, bench.recording_cost): its own folder under
    `opts.out` named `prefix-<time>`, a report holding the options and the machine, Asterisk restarted
    on dialplan/ when `opts.manage_asterisk`; (report, folder, Asterisk's pid, a plain ARI view)."""
    started = dt.datetime.now().astimezone()
    workdir = opts.out / f"{prefix}-{started.strftime('%Y%m%dT%H%M%S')}"
    workdir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "workdir": str(workdir),
        "options": {k: str(v) for k, v in opts.__dict__.items()},
        "machine": machine(),
        "runs": {},
    }
    if opts.manage_asterisk:
        lab.restart_asterisk()
    report["machine"]["asterisk"] = lab.asterisk_version()
    return report, workdir, lab.asterisk_pid(), lab.Ari()


def _write(report: dict[str, Any], workdir: Path) -> None:
    report["finished"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    a_max, b_max = report.get("A", {}).get("max_rate", 0), report.get("B", {}).get("max_rate", 0)
    report["ratio_b_over_a"] = round(b_max / a_max, 3) if a_max else None
    # Figures are only comparable from a box the benchmark had to itself (bench.quiet).
    steps = [s for part in ("calibration", "A", "B") for s in report.get(part, {}).get("steps", [])]
    checks = report.get("B", {}).get("checks", {})
    steps += [checks[k] for k in ("at_80pct", "at_150pct", "recovery_30s") if k in checks]
    steps += checks.get("endurance", [])
    quiet.judge(report, steps)
    (workdir / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str))
    if "A" in report and "B" in report:
        from bench.report import markdown

        (workdir / "report.md").write_text(markdown(report), encoding="utf-8")


def run_b(opts: Options, budget: Budget, workdir: Path, ast_pid: int, ari: lab.Ari) -> dict[str, Any]:
    ctl = lab.ControllerProcess(workdir / "controller")
    t0 = time.time()
    ctl_pid = ctl.start()
    sampler = quiet.sampler({"controller": ctl_pid, "asterisk": ast_pid})
    out: dict[str, Any] = {"rss_kib": {"start": lab.rss_kib(ctl_pid)}}
    ep = Endpoints("127.0.0.1", sip_port=5230, media_port=7300)
    placed = 0
    warm_rss: list[int] = []

    sent = [_ari_requests(ctl)]  # the controller's count so far: each step's requests are the difference

    def after(step: StepResult) -> None:
        nonlocal placed
        placed += step.placed
        now = _ari_requests(ctl)
        if now is not None and sent[-1] is not None:
            step.ari_requests = now - sent[-1]
        sent.append(now)
        _bridge_latency(step, ctl)
        if ctl.alive():
            rss = lab.rss_kib(ctl_pid)
            step.notes.append(f"controller RSS after step {rss} KiB ({placed} calls so far)")
            if placed >= 1000 and not warm_rss:
                warm_rss.append(rss)
                out["rss_kib"]["after_warmup"] = rss
                out["rss_kib"]["warmup_calls"] = placed

    best, steps = ramp("B", opts.rates_b, opts, budget, ep, workdir, "2", sampler, after)
    out["max_rate"] = best
    out["steps"] = [s.summary() for s in steps]
    checks: dict[str, Any] = {}
    n = len(steps)
    at80 = round(best * 0.8, 1)
    if opts.checks and best and ctl.alive():
        if budget.allows(_step_cost(opts.window)):
            # The profile is taken here, at a steady high load, so it does not skew the ramp.
            spy = profile.start(ctl_pid, workdir / "B-profile.txt", int(opts.window + 10)) if opts.profile else None
            try:
                r = run_step(
                    f"B@80%={at80:g}",
                    at80,
                    _calls(at80, opts.window),
                    workdir / f"B-{n:02d}-80pct",
                    ep,
                    caller_prefix=f"12{n:02d}",
                    sample=sampler,
                )
            finally:
                profile.stop(spy)
            if spy is not None:
                out["profile"] = profile.summarise(workdir / "B-profile.txt")
            after(r)
            _print_step(r)
            checks["at_80pct"] = r.summary()
            n += 1
        # Endurance: `endurance_calls` more calls on the same controller, for the RSS comparison.
        # Its baseline is taken here, after the ramp: the ramp's top steps raise RSS to the
        # high-water mark of their concurrency, which is not growth. The calls are counted from
        # here, not from the start: a ramp that placed 10 000 calls itself says nothing of growth.
        if ctl.alive():
            out["rss_kib"]["before_endurance"] = lab.rss_kib(ctl_pid)
            out["rss_kib"]["calls_before_endurance"] = placed
        until = placed + opts.endurance_calls
        while placed < until and ctl.alive():
            seconds = min((until - placed) / at80, budget.left() - opts.overload_seconds - 150)
            if seconds < 20:
                break
            r = run_step(
                f"B@endurance={at80:g}",
                at80,
                int(at80 * seconds),
                workdir / f"B-{n:02d}-endurance",
                ep,
                caller_prefix=f"12{n:02d}",
                sample=sampler,
            )
            after(r)
            _print_step(r)
            checks.setdefault("endurance", []).append(r.summary())
            n += 1
    out["calls_placed"] = placed
    out["controller_alive"] = ctl.alive()
    if ctl.alive():
        out["rss_kib"]["end"] = lab.rss_kib(ctl_pid)
    _finish_controller(ctl, out, ari, t0)

    if opts.checks and best and budget.allows(opts.overload_seconds + 120):
        # Overload on a fresh controller with default settings: adaptive admission must find what this
        # box carries by itself. With --admission-share, on one told it instead (HOTLINE_MAX_CALL_RATE =
        # that share of B's max; at 100 % Asterisk tipped over). 150 % of B's max for `overload_seconds`,
        # then 50 % right after for 30 s (recovery).
        limited = lab.ControllerProcess(workdir / "controller-admission")
        t1 = time.time()
        admit = round(best * opts.admission_share, 1)
        pid = limited.start({"HOTLINE_MAX_CALL_RATE": f"{admit:g}"} if admit > 0 else {})
        sampler = quiet.sampler({"controller": pid, "asterisk": ast_pid})
        over = round(best * 1.5, 1)
        r = run_step(
            f"B@150%={over:g}",
            over,
            _calls(over, opts.overload_seconds),
            workdir / f"B-{n:02d}-150pct",
            ep,
            caller_prefix=f"12{n:02d}",
            sample=sampler,
        )
        _print_step(r)
        checks["at_150pct"] = r.summary()
        checks["at_150pct"]["controller_alive"] = limited.alive()
        n += 1
        rec = round(best * 0.5, 1)
        r = run_step(
            f"B@recovery={rec:g}",
            rec,
            _calls(rec, 30),
            workdir / f"B-{n:02d}-recovery",
            ep,
            caller_prefix=f"12{n:02d}",
            sample=sampler,
        )
        _print_step(r)
        checks["recovery_30s"] = r.summary()
        admission: dict[str, Any] = {"mode": "fixed", "max_call_rate": admit} if admit > 0 else {"mode": "adaptive"}
        admission["limit_moves"] = [
            (e.get("limit_from"), e.get("limit_to")) for e in matching(limited.events(), "admission_limit_moved")
        ]
        _finish_controller(limited, admission, ari, t1)
        checks["admission_controller"] = admission
    out["checks"] = checks
    return out


def _ari_requests(ctl: lab.ControllerProcess) -> int | None:
    """The controller's hotline_ari_requests_total over every method and resource (None: no answer)."""
    url = ctl.health_url.removesuffix("/health") + "/metrics"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    return int(
        sum(
            sample.value
            for family in text_string_to_metric_families(text)
            if family.name == "hotline_ari_requests"
            for sample in family.samples
            if sample.name == "hotline_ari_requests_total"
        )
    )


def _finish_controller(ctl: lab.ControllerProcess, out: dict[str, Any], ari: lab.Ari, since: float) -> None:
    """Leftovers in Asterisk, call-log rows, and a clean stop."""
    out["leftover_channels"], out["leftover_bridges"] = ari.leftovers()
    time.sleep(2)  # the writer thread commits within milliseconds; give it slack
    rows = ctl.rows(since=since - 1)
    out["calllog_rows"] = len(rows)
    out["calllog_outcomes"] = dict(Counter(r["outcome"] for r in rows))
    out["controller_exit"] = ctl.stop()
    out["controller_crashed_calls"] = len(matching(ctl.events(), "call_crashed"))


def _bridge_latency(step: StepResult, ctl: lab.ControllerProcess) -> None:
    """Department's 200 OK (phone's clock) -> bridge formed (controller's call log), per caller."""
    if not step.phone_answers:
        return
    time.sleep(1.0)  # the call log's last writes of this step
    by_hash = ctl.caller_steps(since=time.time() - step.seconds - 120)
    key = ctl.key
    deltas = []
    for caller, answered in step.phone_answers.items():
        row = by_hash.get(privacy.caller_hash(caller, key))
        if row and row["bridged"] > 0:
            deltas.append(row["bridged"] - answered)
    step.answer_to_bridge = dist(deltas)


def machine() -> dict[str, Any]:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    sipp = subprocess.run(["sipp", "-v"], capture_output=True, text=True, check=False).stdout
    load = Path("/proc/loadavg").read_text().split()[:3]
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    return {
        "host": platform.node(),
        "kernel": platform.release(),
        "cpu": cpu,
        "cores": _cores(),
        "mem_gib": round(int(mem) / 1024 / 1024, 1),
        "python": platform.python_version(),
        "sipp": next((ln.strip() for ln in sipp.splitlines() if "SIPp" in ln), "?"),
        "loadavg_at_start": load,
    }


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))
