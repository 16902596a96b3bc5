"""A benchmark step knows how much CPU went to processes that are not part of the measurement."""

from __future__ import annotations

import os
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


def test_the_measured_processes_and_their_children_are_never_others() -> None:
    snapshot = {1: (0, 500), 10: (1, 70), 11: (10, 5), 20: (1, 40), 21: (20, 3), os.getpid(): (1, 9)}
    ours, others = quiet._split(snapshot, {"asterisk": 10})
    assert set(ours) == {10, 11, os.getpid()}
    assert others == {1: 500, 20: 40, 21: 3}


def test_a_busy_measured_daemon_is_not_others_and_unattributed_is_shown_apart() -> None:
    # The shape of Asterisk in the lab: a daemon, outside this process's tree, named as measured.
    burn = BURN.format(seconds=1.5)
    quiet_io = "stdout=s.DEVNULL, stderr=s.DEVNULL"  # or run() would wait for the daemon's end
    daemon = f"import subprocess as s, sys; print(s.Popen([sys.executable, '-c', {burn!r}], {quiet_io}).pid)"
    pid = int(subprocess.run([sys.executable, "-c", daemon], check=True, capture_output=True, text=True).stdout)
    measured, unmeasured = quiet.sampler({"asterisk": pid})(), quiet.sampler({})()
    time.sleep(1.0)
    with_it, without_it = measured(), unmeasured()
    time.sleep(0.6)  # let it end
    assert with_it["asterisk"] >= 25, with_it  # a core for most of the second, less on a busy box
    # Whatever else the box runs shows in both; the daemon's core only where it is not measured. The
    # margin is for a process that ends between the two readings (counted by one sampler only).
    assert without_it["others"] >= 0.8 * with_it["asterisk"], (with_it, without_it)
    assert without_it["others"] - with_it["others"] >= 0.5 * with_it["asterisk"], (with_it, without_it)
    assert "unattributed" in with_it  # kernel time no process accounts for: shown, not judged


def test_a_run_is_noisy_when_any_step_had_others_above_the_limit() -> None:
    steps = [
        {"label": "A@20", "cpu": {"asterisk": 80.0, "others": 2.0}},
        {"label": "B@20", "cpu": {"controller": 30.0, "others": 35.0}},
        {"label": "sipp@40", "cpu": {}},
    ]
    assert quiet.noisy_steps(steps) == ["B@20 (others 35 %)"]
    assert quiet.noisy_steps(steps[:1]) == []
