"""HOTLINE_MAX_CALL_RATE: beyond the rate the box carries, new calls are refused at once."""

from __future__ import annotations

from ivr.controller.app import Admission


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_without_a_rate_every_call_is_admitted() -> None:
    gate = Admission(0)
    assert all(gate.admit() for _ in range(10_000))


def test_a_burst_up_to_one_seconds_worth_passes_and_the_excess_is_refused() -> None:
    clock = Clock()
    gate = Admission(20, clock)
    assert [gate.admit() for _ in range(25)].count(True) == 20


def test_a_sustained_rate_above_the_limit_is_held_to_the_limit() -> None:
    clock = Clock()
    gate = Admission(10, clock)
    admitted = 0
    for _ in range(30 * 60):  # 30 calls/s offered for 60 s
        clock.now += 1 / 30
        admitted += gate.admit()
    assert 600 <= admitted <= 611  # 10/s for 60 s, plus the first second's bucket


def test_calls_are_admitted_again_once_the_storm_has_passed() -> None:
    clock = Clock()
    gate = Admission(5, clock)
    while gate.admit():
        pass
    clock.now += 1.0
    assert [gate.admit() for _ in range(5)] == [True] * 5
