"""Adaptive admission (ivr.controller.admission): the limit on calls in setup follows what the box shows,
on synthetic signal sequences — one `Signals` per 0.5 s probe."""

from __future__ import annotations

from ivr.controller.admission import AdaptiveLimit, InSetup, Shedding, Signals, p90

QUIET_ARI_S = 0.002  # an unloaded Asterisk answers an ARI request in ~2 ms


def steady(in_setup: int, ari_s: float = QUIET_ARI_S, lag_s: float = 0.001) -> Signals:
    return Signals(in_setup=in_setup, ari_p90_s=ari_s, loop_lag_s=lag_s)


def test_a_steady_load_is_never_refused() -> None:
    gate = AdaptiveLimit()
    for probe in range(2_000):  # ~17 min of probes with 5-15 calls in setup, the jitter of a busy box
        in_setup = 5 + probe % 11
        gate.update(steady(in_setup, ari_s=QUIET_ARI_S * (1 + (probe % 7) / 10)))
        assert gate.admit(in_setup)


def test_a_quiet_box_never_refuses_a_call_whatever_its_latency_history() -> None:
    gate = AdaptiveLimit()
    for _ in range(100):  # the worst the box can show, for long
        gate.update(Signals(in_setup=0, ari_p90_s=2.0, loop_lag_s=1.0))
    assert gate.limit == gate.floor
    assert all(gate.admit(n) for n in range(int(gate.floor)))


def test_a_latency_spike_cuts_the_limit_and_calls_beyond_it_are_refused() -> None:
    gate = AdaptiveLimit()
    for _ in range(20):
        gate.update(steady(30))
    assert gate.limit > 30  # grown while 30 calls in setup used it
    assert gate.admit(30)
    for _ in range(3):  # Asterisk saturated: ARI answers in 200 ms instead of 2
        gate.update(steady(30, ari_s=0.200))
    assert gate.limit == gate.floor  # at most halved per probe: 60 -> 30 -> 15 -> 10
    assert not gate.admit(30)
    assert gate.admit(3)


def test_event_loop_lag_alone_cuts_the_limit() -> None:
    gate = AdaptiveLimit()
    gate.update(steady(30))
    before = gate.limit
    gate.update(steady(30, lag_s=0.400))
    assert gate.limit == before / 2


def test_after_the_spike_the_limit_grows_back() -> None:
    gate = AdaptiveLimit()
    for _ in range(20):
        gate.update(steady(30))
    before = gate.limit
    for _ in range(10):
        gate.update(steady(30, ari_s=0.300))
    assert gate.limit == gate.floor
    probes = 0
    while gate.limit < before:
        gate.update(steady(int(gate.limit * 0.6)))  # callers keep using what is let through
        probes += 1
        assert probes < 60, "recovery takes longer than 30 s"
    assert gate.admit(30)


def test_a_spike_on_a_quiet_box_heals_back_to_the_initial_limit_without_load() -> None:
    gate = AdaptiveLimit(initial=40)
    gate.update(steady(0))
    for _ in range(5):
        gate.update(steady(0, ari_s=0.5))
    assert gate.limit < 40
    for _ in range(40):
        gate.update(steady(0))
    assert gate.limit == 40


def test_the_limit_grows_only_while_calls_use_it() -> None:
    gate = AdaptiveLimit(initial=40)
    for _ in range(200):
        gate.update(steady(3))
    assert gate.limit == 40
    for _ in range(200):
        gate.update(steady(int(gate.limit)))
    assert gate.limit == gate.ceiling


def test_a_box_that_got_slower_for_good_re_baselines_instead_of_refusing_for_ever() -> None:
    gate = AdaptiveLimit()
    for _ in range(20):
        gate.update(steady(30))
    for _ in range(1_000):  # ~8 min at 12 ms: a slower box (or a new Asterisk setting), not an overload
        gate.update(steady(30, ari_s=0.012))
    assert gate.admit(30)


def test_the_ceiling_bounds_the_limit_and_the_floor() -> None:
    gate = AdaptiveLimit(ceiling=2)
    for _ in range(50):
        gate.update(steady(2))
    assert gate.limit == 2
    assert [gate.admit(n) for n in range(4)] == [True, True, False, False]


def test_a_large_move_of_the_limit_is_reported_once() -> None:
    gate = AdaptiveLimit(initial=40)
    assert not gate.update(steady(10))
    assert gate.update(steady(30, ari_s=0.5))  # 40 -> 20: worth a log line
    assert not gate.update(steady(10))  # no further big move
    assert gate.logged == 20


def test_probes_without_ari_requests_leave_the_latency_out() -> None:
    gate = AdaptiveLimit()
    gate.update(steady(30))
    before = gate.limit
    gate.update(Signals(in_setup=30, ari_p90_s=None, loop_lag_s=0.0))
    assert gate.limit > before


def test_p90_of_the_probe_period() -> None:
    assert p90([]) is None
    assert p90([0.001] * 9 + [1.0]) == 0.001
    assert p90([0.001] * 8 + [1.0, 1.0]) == 1.0


def test_calls_in_setup_are_counted_once_and_ending_twice_is_harmless() -> None:
    calls = InSetup()
    calls.begin("a")
    calls.begin("b")
    calls.end("a")
    calls.end("a")
    assert len(calls) == 1


# -- shedding before Stasis: the share the dialplan refuses ----------------------------------------------


def test_no_refusal_sheds_nothing() -> None:
    shed = Shedding()
    for _ in range(100):
        shed.update(reached=40, refused=0)
    assert shed.percent == 0


def test_the_share_the_controller_refuses_moves_to_the_dialplan() -> None:
    shed = Shedding()
    shed.update(reached=45, refused=15)  # 90 calls/s offered, the box carries 60: a third refused
    assert shed.percent == 33
    # Next probe: a third is shed before Stasis, so 30 reach the controller, which takes them all.
    shed.update(reached=30, refused=0)
    assert 25 <= shed.percent < 33  # eased a step: the controller's own gate is the fine control


def test_the_share_settles_near_what_the_box_cannot_carry_under_a_steady_overload() -> None:
    """A box carrying 60 calls/s offered 90 (the benchmark's 150 % step), probes of 0.5 s."""
    shed, offered, carried = Shedding(), 45.0, 30.0
    shares = []
    for _ in range(240):  # 2 minutes
        reached = round(offered * (1 - shed.share))
        shed.update(reached=reached, refused=max(0, reached - round(carried)))
        shares.append(shed.share)
    settled = shares[40:]
    assert min(settled) >= 0.2 and max(settled) <= 0.4  # about the third that must go
    assert sum(settled) / len(settled) > 0.27


def test_the_share_falls_back_to_nothing_once_the_load_eases() -> None:
    shed = Shedding()
    shed.update(reached=45, refused=30)
    assert shed.percent == 67
    probes = 0
    while shed.percent > 0:
        shed.update(reached=20, refused=0)
        probes += 1
    assert probes <= 14  # ~7 s at 0.5 s a probe


def test_a_stray_refusal_is_left_to_the_controllers_own_gate() -> None:
    shed = Shedding()
    shed.update(reached=1, refused=1)  # a fixed rate far below one call a second: the one caller refused
    shed.update(reached=8, refused=2)
    assert shed.percent == 0


def test_a_trickle_always_reaches_the_controller_to_tell_that_the_load_eased() -> None:
    shed = Shedding()
    for _ in range(10):
        shed.update(reached=10, refused=10)  # everything that reached it was refused
    assert shed.share == shed.most < 1
