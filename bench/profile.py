"""py-spy on the controller while it is under load, summarised as the functions that cost most.

`python -m bench --profile` samples the controller for the whole B ramp (py-spy record,
--nonblocking so the sampled process is never paused) into collapsed stacks, then ranks
functions by own time ("self") and by time spent in them or below ("total").
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path


def start(pid: int, out: Path, seconds: int) -> subprocess.Popen[bytes] | None:
    exe = shutil.which("py-spy") or str(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "py-spy")
    if not Path(exe).exists():
        return None
    return subprocess.Popen(
        [
            exe,
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--output",
            str(out),
            "--duration",
            str(seconds),
            "--rate",
            "100",
            "--nonblocking",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    import signal

    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # py-spy writes what it has on SIGINT
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def summarise(collapsed: Path, top: int = 15) -> dict[str, list[tuple[str, float]]]:
    """Top functions by self and total share of samples, in percent."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    if not collapsed.exists():
        return {"self": [], "total": []}
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = [_short(f) for f in stack.split(";") if f]
        if frames:
            own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    if not samples:
        return {"self": [], "total": []}
    return {
        "self": [(f, round(n / samples * 100, 1)) for f, n in own.most_common(top)],
        "total": [
            (f, round(n / samples * 100, 1))
            for f, n in total.most_common(top + len(_FRAMEWORK))
            if not f.endswith(_FRAMEWORK)
        ][:top],
        "samples": [("samples", float(samples))],
    }


# Frames every sample passes through (the CLI, the event loop's own loop): no information.
_FRAMEWORK = ("(core.py)", "(runners.py)", "(base_events.py)", "(cli.py)", "(__main__.py)", "(<frozen runpy>)")


def _short(frame: str) -> str:
    # "func (path/to/module.py:123)" -> "func (module.py)"; line numbers split a function apart.
    name, _, where = frame.partition(" (")
    file = where.rsplit(":", 1)[0].rsplit("/", 1)[-1].rstrip(")")
    return f"{name} ({file})" if file else name
