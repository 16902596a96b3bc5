"""The A/B table of a run, as Markdown (BENCHMARKS.md takes it as it is)."""

from __future__ import annotations

from typing import Any

from bench import quiet


def _best(steps: list[dict[str, Any]], rate: float) -> dict[str, Any] | None:
    for s in steps:
        if s["rate"] == rate and s["passed"]:
            return s
    return None


def _lat(d: dict[str, Any]) -> str:
    if not d or not d.get("n"):
        return "—"
    return f"{d['p50']} / {d['p95']} / {d['p99']}"


def _failed(s: dict[str, Any]) -> str:
    if not s["failed"]:
        return "0"
    return f"{s['failed_total']} (" + ", ".join(f"{k} {v}" for k, v in sorted(s["failed"].items())) + ")"


def _per_call(s: dict[str, Any], cpu_keys: tuple[str, ...]) -> str:
    """CPU ms per call of each measured process, and ARI requests per call (A sends none: no controller)."""
    ms = s.get("cpu_ms_per_call") or {}
    cpu = " / ".join(f"{ms[k]:.1f}" if k in ms else "?" for k in cpu_keys)
    requests = s.get("ari_requests_per_call")
    ari = "0" if "controller" not in cpu_keys else ("?" if requests is None else f"{requests:.1f}")
    return f"{cpu} | {ari}"


def _row(name: str, s: dict[str, Any] | None, cpu_keys: tuple[str, ...]) -> str:
    if s is None:
        return f"| {name} | no passing step | | | | | | | | | | |"
    cpu = ", ".join(f"{k} {s['cpu'].get(k, 0):.0f} %" for k in (*cpu_keys, "others"))
    if "unattributed" in s["cpu"]:  # kernel time no process accounts for (bench.quiet): shown, not judged
        cpu += f", unattributed {s['cpu']['unattributed']:.0f} %"
    if "loadavg_before" in s["cpu"]:
        cpu += f"; load {s['cpu']['loadavg_before']:.2f}→{s['cpu']['loadavg_after']:.2f}"
    return (
        f"| {name} | {s['rate']:g} | {s['placed']} | {s['max_concurrent']} | {_failed(s)} | "
        f"{s['retransmissions']} (INVITE {s['invite_retransmissions']}) | {_lat(s['invite_to_200'])} | "
        f"{_lat(s['dtmf_to_invite'])} | {_lat(s['answer_to_bridge'])} | {cpu} | {_per_call(s, cpu_keys)} |"
    )


def steps_table(steps: list[dict[str, Any]], cpu_keys: tuple[str, ...]) -> list[str]:
    lines = [
        "| step | calls/s | placed | max concurrent | failed (by reason) | retransmissions | "
        "INVITE→200 ms p50/p95/p99 | DTMF→outbound INVITE ms | outbound answer→bridge ms | CPU | "
        f"CPU ms per call ({' / '.join(cpu_keys)}) | ARI requests per call |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in steps:
        row = _row(s["label"], s, cpu_keys)
        if not s["passed"]:
            row = row.replace(f"| {s['label']} |", f"| {s['label']} (fail) |", 1)
        lines.append(row)
    return lines


def _at_max(part: dict[str, Any]) -> dict[str, Any] | None:
    return _best(part.get("steps", []), part.get("max_rate", 0))


def _fmt(value: float | None) -> str:
    return "?" if value is None else f"{value:.1f}"


def _costs(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """What one call costs at each flow's highest passing step: the figures issue 21's goals are set in."""
    lines = [
        "| at the highest passing step | calls/s | Asterisk CPU ms per call | controller CPU ms per call | "
        "ARI requests per call |",
        "|---|---|---|---|---|",
    ]
    for name, part, has_controller in (("A: pure dialplan", a, False), ("B: controller", b, True)):
        s = _at_max(part)
        if s is None:
            lines.append(f"| {name} | no passing step | | | |")
            continue
        ms = s.get("cpu_ms_per_call") or {}
        requests = s.get("ari_requests_per_call")
        top = part["steps"][-1]
        ceiling = "" if not top["passed"] else " (its highest step tried passed: not its ceiling)"
        lines.append(
            f"| {name} | {s['rate']:g}{ceiling} | {_fmt(ms.get('asterisk'))} | "
            f"{_fmt(ms.get('controller')) if has_controller else '0 (none)'} | "
            f"{_fmt(requests) if has_controller else '0 (none)'} |"
        )
    return [*lines, ""]


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    out = [
        f"Run {r['started']} → {r['finished']}; {m['cpu']}, {m['cores']} cores, {m['mem_gib']} GiB; "
        f"kernel {m['kernel']}; Asterisk {m.get('asterisk', '?')}; {m['sipp']}; Python {m['python']}; "
        f"load average at start {' '.join(m['loadavg_at_start'])}.",
        "",
    ]
    if r.get("valid"):
        out += [f"**Valid run**: no step had other processes above {quiet.LIMIT_PERCENT:g} % of a core.", ""]
    else:
        noisy = "; ".join(r.get("noisy_steps") or []) or "no step measured"
        out += [
            f"**NOT a valid run** — other processes used more than {quiet.LIMIT_PERCENT:g} % of a core "
            f"during: {noisy}. Its figures are not comparable; run it again on a quiet box.",
            "",
        ]
    a, b = r["A"], r["B"]
    out += [
        "| | max sustained calls/s (< 0.5 % failed) | channels / bridges left | |",
        "|---|---|---|---|",
        f"| A: pure dialplan | **{a['max_rate']:g}** | {a['leftover_channels']} / {a['leftover_bridges']} | |",
        f"| B: controller | **{b['max_rate']:g}** | {b['leftover_channels']} / {b['leftover_bridges']} | "
        f"call-log rows {b['calllog_rows']} vs calls placed {b['calls_placed']} |",
        f"| **B/A** | **{r['ratio_b_over_a']}** | | |",
        "",
    ]
    out += _costs(a, b)
    if "calibration" in r:
        c = r["calibration"]
        out.append(
            f"SIPp alone (citizen → SIPp phone, no Asterisk): passed every step up to **{c['max_rate']:g} calls/s**"
            + (" (its own ceiling)." if c["ceiling_reached"] else " (the highest step tried; not its ceiling).")
        )
        out.append("")
    out += ["A steps:", ""] + steps_table(a["steps"], ("asterisk",)) + [""]
    out += ["B steps:", ""] + steps_table(b["steps"], ("controller", "asterisk")) + [""]
    checks = b.get("checks", {})
    extra = [checks[k] for k in ("at_80pct", "at_150pct", "recovery_30s") if k in checks] + checks.get("endurance", [])
    if extra:
        out += ["B checks (80 % of max; 150 % overload; recovery at 50 % right after; endurance):", ""]
        out += steps_table(extra, ("controller", "asterisk")) + [""]
    adm = checks.get("admission_controller")
    if adm:
        out.append(
            "Overload/recovery ran on a fresh controller with "
            + (
                f"HOTLINE_MAX_CALL_RATE={adm['max_call_rate']:g}: "
                if adm.get("mode", "fixed") == "fixed"  # runs before adaptive admission had no mode
                else f"default settings (adaptive admission; limit moves {adm.get('limit_moves', [])}): "
            )
            + f"channels / bridges left {adm['leftover_channels']} / {adm['leftover_bridges']}, call-log rows "
            f"{adm['calllog_rows']} {adm['calllog_outcomes']}, exit {adm['controller_exit']}, "
            f"crashed calls {adm['controller_crashed_calls']}."
        )
        out.append("")
    rss = b.get("rss_kib", {})
    out.append(
        f"Controller RSS: start {rss.get('start')} KiB, after warm-up ({rss.get('warmup_calls')} calls) "
        f"{rss.get('after_warmup')} KiB, at the end ({b['calls_placed']} calls) {rss.get('end')} KiB"
        + (
            f" ({(rss['end'] / rss['after_warmup'] - 1) * 100:+.1f} % after warm-up)."
            if rss.get("end") and rss.get("after_warmup")
            else "."
        )
    )
    if rss.get("before_endurance") and rss.get("end") and b["calls_placed"] > rss.get("calls_before_endurance", 0):
        out.append(
            f"Over the endurance step ({b['calls_placed'] - rss['calls_before_endurance']} calls at 80 %, after "
            f"the ramp's peak): {rss['before_endurance']} → {rss['end']} KiB "
            f"({(rss['end'] / rss['before_endurance'] - 1) * 100:+.1f} %)."
        )
    out.append(
        f"Call-log outcomes: {b.get('calllog_outcomes')}; controller exit {b.get('controller_exit')}, "
        f"crashed calls {b.get('controller_crashed_calls')}."
    )
    prof = b.get("profile")
    if prof:
        out += [
            "",
            f"Controller profile (py-spy, {int(prof.get('samples', [('', 0)])[0][1])} samples during the 80 % step), "
            "top functions by own time and by total time:",
            "",
            "| own % | function | | total % | function |",
            "|---|---|---|---|---|",
        ]
        for (f1, p1), (f2, p2) in zip(prof["self"], prof["total"], strict=False):
            out.append(f"| {p1} | `{f1}` | | {p2} | `{f2}` |")
    return "\n".join(out) + "\n"
