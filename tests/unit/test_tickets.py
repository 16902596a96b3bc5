"""Tickets (限时办结): deadlines in official workdays, most specific policy wins, unique ids.

Dates are real 2026 days (chinese-calendar 1.11.0, the State Council 2026 notice):
国庆 Oct 1–7 off, Sat Oct 10 a 调休 make-up workday, Sun Oct 11 a rest day.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from collections.abc import Iterator

import pytest

from ivr.routing.hours import is_workday
from ivr.tickets import TICKET_ID_RE, DeadlinePolicy, from_epoch, new_ticket, to_epoch

D = dt.date


def at(iso: str) -> dt.datetime:
    return dt.datetime.fromisoformat(iso)


def test_the_calendar_around_national_day_is_what_these_tests_assume() -> None:
    assert is_workday(D(2026, 9, 30))
    assert not any(is_workday(D(2026, 10, d)) for d in range(1, 8))
    assert is_workday(D(2026, 10, 8)) and is_workday(D(2026, 10, 9))
    assert D(2026, 10, 10).weekday() == 5 and is_workday(D(2026, 10, 10))  # Saturday, 调休
    assert not is_workday(D(2026, 10, 11))


def test_three_workdays_from_the_eve_of_national_day_end_on_the_make_up_saturday() -> None:
    policy = DeadlinePolicy(default_workdays=3)
    assert policy.deadline("merge", "", at("2026-09-30T10:15:30")) == at("2026-10-10T10:15:30")


def test_one_workday_from_the_eve_of_national_day_is_the_first_workday_after_it() -> None:
    assert DeadlinePolicy(default_workdays=1).deadline("merge", "", at("2026-09-30T16:00")) == at("2026-10-08T16:00")


def test_the_creation_day_never_counts_even_early_on_a_workday() -> None:
    policy = DeadlinePolicy(default_workdays=1)
    assert policy.deadline("merge", "", at("2026-11-24T00:00")) == at("2026-11-25T00:00")  # Tue -> Wed


def test_a_ticket_created_on_a_rest_day_counts_from_the_next_workday() -> None:
    policy = DeadlinePolicy(default_workdays=1)
    assert policy.deadline("merge", "", at("2026-10-03T09:00")) == at("2026-10-08T09:00")  # holiday
    assert policy.deadline("merge", "", at("2026-10-11T20:00")) == at("2026-10-12T20:00")  # Sunday after 调休


def test_weekends_are_skipped() -> None:
    policy = DeadlinePolicy(default_workdays=5)
    assert policy.deadline("merge", "", at("2026-11-27T11:00")) == at("2026-12-04T11:00")  # Fri -> Fri


def test_unit_overrides_mode_overrides_default() -> None:
    policy = DeadlinePolicy(default_workdays=5, by_mode={"message": 1, "operator": 3}, by_unit={"市公安局": 2})
    assert policy.workdays_for("merge", "市住建局") == 5
    assert policy.workdays_for("message", "市住建局") == 1
    assert policy.workdays_for("operator", "") == 3
    assert policy.workdays_for("message", "市公安局") == 2
    assert policy.workdays_for("merge", "市公安局") == 2
    assert policy.workdays_for("something-new", "") == 5  # never fails a call


def test_the_deadline_follows_the_policy() -> None:
    policy = DeadlinePolicy(default_workdays=5, by_mode={"message": 1}, by_unit={"市公安局": 3})
    created = at("2026-09-30T10:00")
    assert policy.deadline("message", "市住建局", created) == at("2026-10-08T10:00")
    assert policy.deadline("message", "市公安局", created) == at("2026-10-10T10:00")
    assert policy.deadline("transfer", "市住建局", created) == at("2026-10-13T10:00")  # 8, 9, 10, 12, 13


@pytest.mark.parametrize(
    "bad",
    [
        {"default_workdays": 0},
        {"default_workdays": -1},
        {"default_workdays": True},
        {"default_workdays": 2.5},
        {"by_mode": {"merg": 3}},
        {"by_mode": {"merge": 0}},
        {"by_unit": {"市公安局": "3"}},
        {"by_unit": {"": 3}},
        {"by_unit": {"市公安局": 10_000}},
    ],
)
def test_a_wrong_policy_is_refused_naming_the_key(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="deadlines"):
        DeadlinePolicy(**bad)  # type: ignore[arg-type]


def test_a_policy_is_frozen_hashable_and_keeps_its_own_copy() -> None:
    by_mode = {"message": 1}
    policy = DeadlinePolicy(by_mode=by_mode)
    by_mode["message"] = 9
    assert policy.workdays_for("message", "") == 1
    with pytest.raises(TypeError):
        policy.by_mode["message"] = 9  # type: ignore[index]
    same = DeadlinePolicy(by_mode={"message": 1})
    assert policy == same and hash(policy) == hash(same)
    assert {policy, same, DeadlinePolicy()} == {policy, DeadlinePolicy()}
    assert DeadlinePolicy() == DeadlinePolicy(by_mode={}, by_unit={})


def test_aware_times_are_refused() -> None:
    aware = dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    with pytest.raises(ValueError, match="naive"):
        DeadlinePolicy().deadline("merge", "", aware)
    with pytest.raises(ValueError, match="naive"):
        new_ticket("c1", "merge", "u", "merge", "r", aware, DeadlinePolicy())


@pytest.fixture
def utc_machine() -> Iterator[None]:
    """Run as on a server whose zone is UTC: local time must still mean Asia/Shanghai."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def test_a_new_ticket_carries_its_call_and_its_deadline_in_unix_seconds(utc_machine: None) -> None:
    policy = DeadlinePolicy(default_workdays=3)
    t = new_ticket("call-1", "merge", "市住建局", "merge", "zjj", at("2026-09-30T10:00"), policy)
    assert (t.call_id, t.kind, t.unit, t.mode, t.route_id, t.status) == (
        "call-1",
        "merge",
        "市住建局",
        "merge",
        "zjj",
        "open",
    )
    assert t.created_at == dt.datetime(2026, 9, 30, 2, 0, tzinfo=dt.UTC).timestamp()  # 10:00 in UTC+8
    assert t.deadline_at == dt.datetime(2026, 10, 10, 2, 0, tzinfo=dt.UTC).timestamp()
    assert from_epoch(t.deadline_at) == at("2026-10-10T10:00")
    assert to_epoch(at("2026-10-10T10:00")) == t.deadline_at


def test_ticket_ids_are_well_formed_and_carry_the_local_date() -> None:
    t = new_ticket("c", "operator", "", "", "", at("2026-11-25T23:59:59"), DeadlinePolicy())
    assert TICKET_ID_RE.fullmatch(t.ticket_id), t.ticket_id
    assert t.ticket_id.startswith("12345-20261125-")


def test_ticket_ids_are_unique_even_for_a_burst_in_one_second() -> None:
    created = at("2026-12-01T09:00:00")
    ids = [new_ticket(f"c{i}", "merge", "u", "merge", "r", created, DeadlinePolicy()).ticket_id for i in range(1000)]
    assert len(set(ids)) == 1000  # 1000 > 128 a second: the burst borrows later numbers
    assert all(TICKET_ID_RE.fullmatch(i) for i in ids)
    # later in the day: still unique, and after the burst
    later = new_ticket("x", "merge", "u", "merge", "r", at("2026-12-01T09:00:10"), DeadlinePolicy()).ticket_id
    assert later not in ids and later > max(ids)


def test_ticket_ids_are_unique_across_threads() -> None:
    created = at("2026-12-02T15:30:00")
    ids: list[str] = []
    lock = threading.Lock()

    def issue() -> None:
        mine = [new_ticket("c", "merge", "u", "merge", "r", created, DeadlinePolicy()).ticket_id for _ in range(200)]
        with lock:
            ids.extend(mine)

    threads = [threading.Thread(target=issue) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(ids) == len(set(ids)) == 1600


def test_two_cluster_nodes_opening_tickets_in_the_same_second_never_issue_the_same_number() -> None:
    """Each node numbers its own tickets; the node id keeps them apart in the shared database."""
    at = dt.datetime(2026, 11, 24, 10, 0, 0)
    policy = DeadlinePolicy()
    ids = [
        new_ticket(f"c{n}", "dial", "u", "merge", "r", at, policy, node=node).ticket_id
        for n in range(50)
        for node in ("node1", "node2")
    ]
    assert len(set(ids)) == len(ids)
    assert all(TICKET_ID_RE.fullmatch(i) for i in ids)
    assert ids[0].startswith("12345-20261124-node1-") and ids[1].startswith("12345-20261124-node2-")


def test_a_node_id_that_would_break_the_ticket_number_is_refused() -> None:
    with pytest.raises(ValueError, match="node id"):
        new_ticket("c", "dial", "u", "merge", "r", dt.datetime(2026, 11, 24, 10), DeadlinePolicy(), node="Node 1")
