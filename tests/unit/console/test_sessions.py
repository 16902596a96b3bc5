"""Console sessions: server-side, ended by idle time or by the shift's length, and their CSRF token."""

from __future__ import annotations

from ivr.console.accounts import Account
from ivr.console.sessions import Sessions, csrf_ok

LI = Account("li", "operator", "seat-1", "$2b$04$x")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_lives_while_used_and_ends_after_idle_time() -> None:
    clock = Clock()
    sessions = Sessions(idle_s=60, max_s=3600, clock=clock)
    s = sessions.open(LI)
    clock.now += 59
    assert sessions.get(s.id) is s
    clock.now += 59  # used a second ago: the idle time starts again
    assert sessions.get(s.id) is s
    clock.now += 61
    assert sessions.get(s.id) is None
    assert sessions.get(s.id) is None  # and it stays gone


def test_a_session_ends_after_its_maximum_even_when_used() -> None:
    clock = Clock()
    sessions = Sessions(idle_s=60, max_s=100, clock=clock)
    s = sessions.open(LI)
    for _ in range(3):
        clock.now += 30
        assert sessions.get(s.id) is s
    clock.now += 30
    assert sessions.get(s.id) is None


def test_unknown_ids_and_closed_sessions_are_nobody() -> None:
    sessions = Sessions()
    s = sessions.open(LI)
    other = sessions.open(LI)
    assert sessions.get(None) is None and sessions.get("") is None and sessions.get("guess") is None
    sessions.close(s.id)
    assert sessions.get(s.id) is None and sessions.get(other.id) is other
    assert sessions.close_account("li") == 1 and sessions.get(other.id) is None


def test_the_csrf_token_is_the_sessions_own() -> None:
    sessions = Sessions()
    a, b = sessions.open(LI), sessions.open(LI)
    assert a.csrf != b.csrf and a.id != a.csrf
    assert csrf_ok(a, a.csrf)
    assert not csrf_ok(a, b.csrf) and not csrf_ok(a, "") and not csrf_ok(a, None)
