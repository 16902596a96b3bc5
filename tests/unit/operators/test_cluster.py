"""The one line across the cluster's nodes: who gets which seat (ivr.operators.cluster.plan)."""

from __future__ import annotations

from ivr.operators.cluster import Plan, SharedSeat, Waiting, plan, position

NOW = 1000.0
LIVE = NOW + 10


def caller(call_id: str, node: str, joined: float, *, front: bool = False) -> Waiting:
    return Waiting(call_id, node, joined, LIVE, front=front)


def ready(name: str, idle: float, **kw: object) -> SharedSeat:
    return SharedSeat(name, "ready", idle, **kw)  # type: ignore[arg-type]


def test_a_caller_on_node1_is_offered_the_ready_seat_whatever_node_it_sits_behind() -> None:
    result = plan([caller("c1", "node1", 10)], [SharedSeat("seat-1", "signed_out", 0), ready("seat-2", 5)], NOW)
    assert result == Plan(offers=(("c1", "seat-2"),))


def test_the_longest_waiting_caller_goes_first_across_nodes() -> None:
    line = [caller("late", "node1", 30), caller("early", "node2", 20), caller("latest", "node1", 40)]
    assert plan(line, [ready("seat-1", 0)], NOW).offers == (("early", "seat-1"),)


def test_a_caller_back_from_a_failed_transfer_goes_before_everyone() -> None:
    line = [caller("early", "node1", 1), caller("back", "node2", 50, front=True)]
    assert plan(line, [ready("seat-1", 0)], NOW).offers == (("back", "seat-1"),)


def test_the_longest_idle_seat_goes_first_and_a_penalised_one_last() -> None:
    seats = [ready("seat-1", 1, penalty_until=NOW + 5), ready("seat-2", 9), ready("seat-3", 3)]
    line = [caller("a", "node1", 1), caller("b", "node2", 2), caller("c", "node1", 3)]
    assert plan(line, seats, NOW).offers == (("a", "seat-3"), ("b", "seat-2"), ("c", "seat-1"))


def test_a_seat_is_never_offered_two_calls() -> None:
    # seat-1 already rings for "a", who is still in line: neither "a" nor "b" gets it (or another) now
    line = [caller("a", "node1", 1), caller("b", "node2", 2)]
    seats = [ready("seat-1", 0, holder="a", holder_node="node1", lease_until=LIVE), ready("seat-2", 5)]
    assert plan(line, seats, NOW).offers == (("b", "seat-2"),)


def test_paused_signed_out_and_wrap_up_seats_are_never_offered() -> None:
    seats = [SharedSeat(n, state, 0) for n, state in (("s1", "paused"), ("s2", "signed_out"), ("s3", "wrap_up"))]
    assert plan([caller("a", "node1", 1)], seats, NOW).offers == ()


def test_a_dead_nodes_callers_leave_the_line_and_the_seats_it_held_are_free_again() -> None:
    line = [Waiting("gone", "node2", 1, lease_until=NOW - 1), caller("alive", "node1", 5)]
    seats = [ready("seat-1", 0, holder="gone", holder_node="node2", lease_until=NOW - 1)]
    result = plan(line, seats, NOW)
    assert result.expired_callers == ("gone",)
    assert result.freed_seats == (("seat-1", NOW - 1),)
    assert result.offers == (("alive", "seat-1"),)


def test_the_position_counts_live_callers_ahead_on_every_node_ringing_or_not() -> None:
    line = [
        caller("a", "node1", 1),
        Waiting("dead", "node2", 2, lease_until=NOW),
        caller("b", "node2", 3),
        caller("c", "node1", 4),
    ]
    assert [position(line, c, NOW) for c in ("a", "b", "c", "dead", "nobody")] == [1, 2, 3, 0, 0]
