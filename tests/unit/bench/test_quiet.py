"""A benchmark step knows how much CPU went to processes that are not part of the measurement."""

from __future__ import annotations

import subprocess
import sys
import time

from bench import quiet

BURN = "import time\nend = time.process_time() + {seconds}\nwhile time.process_time() < end: pass\n"


def test_busy_and_steal_come_from_the_first_line_of_proc_stat() -> None:
    stat = "cpu  100 5 40 9000 7 3 2 11 0 0\ncpu0 50 2 20 4500 3 1 1 5 0 0\n"
    assert quiet.machine_ticks(stat) == (145, 11)  # user + nice + system; irq/softirq are the load's own


def test_a_process_tree_is_every_process_below_its_roots() -> None:
    parents = {2: 1, 3: 2, 4: 3, 5: 1, 6: 99}
    assert quiet.descendants({2}, parents) == {2, 3, 4}
    assert quiet.descendants({2, 99}, parents) == {2, 3, 4, 6, 99}


def test_cpu_of_a_child_that_ended_during_the_step_is_ours() -> None:
    before = quiet.ours_ticks({})
    subprocess.run([sys.executable, "-c", BURN.format(seconds=0.4)], check=True)
    used = (quiet.ours_ticks({}) - before) / quiet.CLK_TCK
    assert used >= 0.35  # reaped: counted through our cutime, not lost to "others"


def test_a_process_outside_the_measurement_shows_as_others() -> None:
    start = quiet.sampler({})
    stop = start()
    # A daemon: started through a child that exits at once, so it is no longer in our tree.
    daemon = f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', {BURN.format(seconds=1.0)!r}])"
    subprocess.run([sys.executable, "-c", daemon], check=True)
    time.sleep(1.3)
    figures = stop()
    assert figures["others"] >= 40, figures  # one core busy for ~1 of ~1.3 s (more if the box is busy)
    assert {"steal", "loadavg_before", "loadavg_after"} <= set(figures)


def test_a_run_is_noisy_when_any_step_had_others_above_the_limit() -> None:
    steps = [
        {"label": "A@20", "cpu": {"asterisk": 80.0, "others": 2.0}},
        {"label": "B@20", "cpu": {"controller": 30.0, "others": 35.0}},
        {"label": "sipp@40", "cpu": {}},
    ]
    assert quiet.noisy_steps(steps) == ["B@20 (others 35 %)"]
    assert quiet.noisy_steps(steps[:1]) == []
