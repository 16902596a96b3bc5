"""Was the box quiet? CPU used during a step by processes that are not part of the measurement.

Every figure a benchmark prints is only as good as the cores it had to itself: on 2 cores, a test
suite or an editor's language server running beside it moves the ceiling by a third. A step's
"others" is what every process outside the measurement used — the ticks (utime + stime, plus
reaped children's) of each process that is not Asterisk, the controller or this benchmark's own
tree (SIPp citizens and phones, py-spy), read from /proc/PID/stat at the step's start and end.
Children that ended count through their parent's cutime/cstime, ours or another's.

"unattributed" is the machine's busy time (user + nice + system in /proc/stat) that no process's
ticks account for. It is shown, not judged: on this box the pure-dialplan flow (A) leaves ~20 %
of a core of it at 60 calls/s with nothing else running — every process's ticks sampled each 5 s
summed to 400-440 of the machine's 510-560 — while the controller flow leaves none, so counting
it as "others" (as this module first did) called a quiet A step noisy. A process started and
ended within one step under a parent that does not reap it (a double-forked daemon's short life)
shows only there.
Interrupt and steal time are left out: loopback traffic's softirqs are the load's own, and steal
is the hypervisor's, reported on its own.

A run is valid only if no step's others exceeded `LIMIT_PERCENT` of one core.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

LIMIT_PERCENT = 10.0  # of one core, per step
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")

Sampler = Callable[[], Callable[[], dict[str, float]]]


def machine_ticks(stat: str | None = None) -> tuple[int, int]:
    """(busy, steal) ticks of the whole machine from /proc/stat's first line."""
    text = stat if stat is not None else (PROC / "stat").read_text()
    fields = [int(v) for v in text.splitlines()[0].split()[1:]]
    user, nice, system = fields[0], fields[1], fields[2]
    steal = fields[7] if len(fields) > 7 else 0
    return user + nice + system, steal


def _stat_fields(pid: int) -> list[str]:
    # The command name may hold spaces and parentheses: fields start after the last ")".
    return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()


def _ticks(fields: list[str], *, reaped: bool) -> int:
    """utime + stime (all threads), plus the reaped children's cutime + cstime when asked."""
    return sum(int(v) for v in fields[11 : 15 if reaped else 13])


def process_ticks(pid: int) -> int:
    """utime + stime of `pid` (all its threads)."""
    try:
        return _ticks(_stat_fields(pid), reaped=False)
    except (OSError, IndexError):
        return 0


def descendants(roots: set[int], parents: dict[int, int]) -> set[int]:
    """`roots` and every process below them."""
    tree = set(roots)
    grew = True
    while grew:
        below = {pid for pid, parent in parents.items() if parent in tree and pid not in tree}
        tree |= below
        grew = bool(below)
    return tree


def ours_ticks(pids: dict[str, int]) -> int:
    """Ticks of this process's tree and of the measured processes' trees, each counted once."""
    return sum(_split(_all_ticks(), pids)[0].values())


def _all_ticks() -> dict[int, tuple[int, int]]:
    """Every process: (parent, own ticks + reaped children's ticks)."""
    out: dict[int, tuple[int, int]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            try:
                f = _stat_fields(int(entry.name))
                # A live process's ticks are its own; once reaped they move into its parent's
                # cutime/cstime, never both at once: so each counts its own and its reaped children's.
                out[int(entry.name)] = (int(f[1]), _ticks(f, reaped=True))
            except (OSError, IndexError, ValueError):
                continue  # gone between listing and reading
    return out


def _split(snapshot: dict[int, tuple[int, int]], pids: dict[str, int]) -> tuple[dict[int, int], dict[int, int]]:
    """(ours, everyone else's) ticks per process: ours = this process's tree and the measured ones'."""
    tree = descendants({os.getpid(), *pids.values()}, {pid: parent for pid, (parent, _) in snapshot.items()})
    ours = {pid: ticks for pid, (_, ticks) in snapshot.items() if pid in tree}
    others = {pid: ticks for pid, (_, ticks) in snapshot.items() if pid not in tree}
    return ours, others


def loadavg() -> float:
    return float((PROC / "loadavg").read_text().split()[0])


def sampler(pids: dict[str, int]) -> Sampler:
    """start() -> stop(); stop() gives each process's mean CPU % (100 = one core) since start(),
    plus "others" (CPU % of every process outside the measurement), "unattributed" (the machine's
    busy time no process accounts for), "steal" and the 1-min load average before and after."""

    def start() -> Callable[[], dict[str, float]]:
        t0 = time.monotonic()
        load0 = loadavg()
        busy0, steal0 = machine_ticks()
        ours0, others0 = _split(_all_ticks(), pids)
        each0 = {name: process_ticks(pid) for name, pid in pids.items()}

        def stop() -> dict[str, float]:
            wall = time.monotonic() - t0
            busy1, steal1 = machine_ticks()
            ours1, others1 = _split(_all_ticks(), pids)

            def pct(ticks: int) -> float:
                return round(ticks / CLK_TCK / wall * 100, 1) if wall else 0.0

            out = {name: pct(process_ticks(pid) - each0[name]) for name, pid in pids.items()}
            # Differences of sums, not per process: a process that ended during the step is gone
            # from the second reading and its whole life is in its parent's cutime there.
            ours = sum(ours1.values()) - sum(ours0.values())
            others = max(0, sum(others1.values()) - sum(others0.values()))
            out["others"] = pct(others)
            out["unattributed"] = max(0.0, pct((busy1 - busy0) - ours - others))
            out["steal"] = pct(steal1 - steal0)
            out["loadavg_before"] = load0
            out["loadavg_after"] = loadavg()
            return out

        return stop

    return start


def judge(report: dict[str, Any], steps: list[dict[str, Any]]) -> None:
    """Mark `report` valid or not from its steps: comparable only from a box the benchmark had to itself."""
    report["noisy_steps"] = noisy_steps(steps)
    report["valid"] = bool(steps) and not report["noisy_steps"] and "error" not in report


def noisy_steps(steps: list[dict[str, Any]], limit: float = LIMIT_PERCENT) -> list[str]:
    """Labels of the steps during which other processes used more than `limit` % of a core."""
    noisy = []
    for step in steps:
        cpu = step.get("cpu") or {}
        if isinstance(cpu, dict) and float(cpu.get("others", 0.0)) > limit:
            noisy.append(f"{step['label']} (others {cpu['others']:.0f} %)")
    return noisy


def preamble(title: str, report: dict[str, Any]) -> list[str]:
    """A report's first lines: when and on what it ran, and — before any figure — whether they count."""
    m = report["machine"]
    lines = [
        f"{title} {report['started']} → {report.get('finished', '?')}; {m['cpu']}, {m['cores']} cores; "
        f"Asterisk {m.get('asterisk', '?')}; load average at start {' '.join(m['loadavg_at_start'])}.",
        "",
    ]
    if not report.get("valid"):
        noisy = "; ".join(report.get("noisy_steps") or []) or "no step measured"
        lines += [
            f"**NOT a valid run** — other processes used more than {LIMIT_PERCENT:g} % of a core during: "
            f"{noisy}. Its figures are not comparable; run it again on a quiet box.",
            "",
        ]
    return lines
