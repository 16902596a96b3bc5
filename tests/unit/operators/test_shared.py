"""The cluster's one line in a real PostgreSQL: two nodes' pools, each with its own link, one database.

Ticks are driven by hand (`tick()`), so each step of the story is one sync of one node.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from ivr.operators.queue import SeatPool
from ivr.operators.seats import Seat
from ivr.operators.shared import LEASE_S, ClusterLink, SharedLine
from tests.pg import PostgresServer, running_server

SEATS = [Seat("seat-1", "PJSIP/operator-1"), Seat("seat-2", "PJSIP/operator-2")]


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    with running_server() as pg:
        yield pg


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def node(url: str, name: str, clock: Clock) -> ClusterLink:
    return ClusterLink(SeatPool(SEATS, shared=True), SharedLine(url), name, wall=clock)


async def settle(*links: ClusterLink) -> None:
    for link in links:
        await link.tick()


def test_a_caller_on_node1_is_offered_the_seat_an_operator_made_ready_on_node2(server: PostgresServer) -> None:
    async def story() -> None:
        clock = Clock()
        url = server.database()
        one, two = node(url, "node1", clock), node(url, "node2", clock)
        one.pool.set_state("seat-1", "signed_out", by="api")
        one.pool.set_state("seat-2", "signed_out", by="api")
        await settle(one, two)
        assert [v.presence for v in two.pool.snapshot().seats] == ["signed_out", "signed_out"]  # mirrored
        async with one.pool.wait_turn("c1") as turn:
            await settle(one, two)
            assert turn.seat is None  # nobody is ready anywhere
            two.pool.set_state("seat-2", "ready", by="api")
            await settle(two, one)
            assert turn.seat == SEATS[1]
            turn.connected(turn.seat)
            await settle(one, two)
            async with two.pool.wait_turn("c2") as other:  # seat-2 talks for c1: not offered to c2
                await settle(two, one, two)
                assert other.seat is None
        await settle(one, two)
        await one.stop()
        await two.stop()

    asyncio.run(story())


def test_the_longest_waiting_caller_goes_first_across_nodes_and_a_seat_never_gets_two(server: PostgresServer) -> None:
    async def story() -> None:
        clock = Clock()
        url = server.database()
        one, two = node(url, "node1", clock), node(url, "node2", clock)
        for seat in ("seat-1", "seat-2"):
            two.pool.set_state(seat, "paused", "meeting", by="api")
        await settle(two, one)
        async with one.pool.wait_turn("early") as early, two.pool.wait_turn("late") as late:
            late.joined_wall = early.joined_wall + 5
            await settle(one, two)
            one.pool.set_state("seat-1", "ready", by="api")
            await settle(two, one, two)  # node2 runs the dispatch too: still the node1 caller first
            assert (early.seat, late.seat) == (SEATS[0], None)
            early.no_answer(SEATS[0])  # seat-1 is on penalty; early keeps the front, no other seat is ready
            await settle(one, two, one)
            assert (early.seat, late.seat) == (SEATS[0], None)  # the only ready seat, penalised, rings again
        await one.stop()
        await two.stop()

    asyncio.run(story())


def test_a_node_that_dies_frees_the_seats_its_callers_held_and_leaves_the_line(server: PostgresServer) -> None:
    async def story() -> None:
        clock = Clock()
        url = server.database()
        one, two = node(url, "node1", clock), node(url, "node2", clock)
        one.pool.set_state("seat-2", "signed_out", by="api")
        await settle(one, two)
        async with one.pool.wait_turn("doomed") as doomed:
            await settle(one)
            assert doomed.seat == SEATS[0]
            # node1 stops syncing (killed): node2's caller waits until node1's leases run out
            async with two.pool.wait_turn("next") as waiting:
                await settle(two)
                assert waiting.seat is None
                clock.now += LEASE_S + 0.1
                await settle(two, two)
                assert waiting.seat == SEATS[0]
        await one.stop()
        await two.stop()

    asyncio.run(story())
