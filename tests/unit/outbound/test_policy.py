"""When the hotline may call a citizen back, and how often (routes.yaml `outbound:`)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ivr.errors import RoutesError
from ivr.routing import routes

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = (ROOT / "routes.yaml").read_text(encoding="utf-8")
POLICY = routes.parse(SHIPPED, "routes.yaml").outbound
TUESDAY = dt.datetime(2026, 11, 24)


def test_the_shipped_policy_dials_over_the_carrier_in_office_hours() -> None:
    assert POLICY is not None
    assert (POLICY.endpoint, POLICY.hours.name, POLICY.max_attempts, POLICY.backoff_minutes) == (
        "carrier",
        "office",
        3,
        (10, 30),
    )
    assert POLICY.dial_string("13912345678") == "PJSIP/13912345678@carrier"
    assert POLICY.allowed(TUESDAY.replace(hour=10)) and not POLICY.allowed(TUESDAY.replace(hour=20))
    assert not POLICY.allowed(dt.datetime(2026, 11, 28, 10))  # a Saturday


def test_attempts_are_bounded_and_spaced_by_the_backoff() -> None:
    assert POLICY is not None
    # The first try waits first_after_minutes (5) after the missed call: the caller may call again.
    assert not POLICY.due(0, None, now=500.0 + 4 * 60, since=500.0) and POLICY.due(0, None, 500.0 + 5 * 60, 500.0)
    assert not POLICY.due(1, 1000.0, 1000.0 + 9 * 60, 500.0) and POLICY.due(1, 1000.0, 1000.0 + 10 * 60, 500.0)
    assert not POLICY.due(2, 1000.0, 1000.0 + 29 * 60, 500.0) and POLICY.due(2, 1000.0, 1000.0 + 30 * 60, 500.0)
    assert not POLICY.due(3, 1000.0, now=1e12, since=500.0)  # max_attempts


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("  trunk: carrier ", "  trunk: nowhere ", "unknown trunk 'nowhere'"),
        ("  hours: office                 # only", "  hours: nights                 # only", "unknown hours 'nights'"),
        ("  max_attempts: 3 ", "  max_attempts: 0 ", "max_attempts"),
        ("  backoff_minutes: [10, 30] ", "  backoff_minutes: [] ", "give at least one number of minutes"),
    ],
)
def test_a_bad_outbound_block_is_refused_with_its_line(old: str, new: str, message: str) -> None:
    assert old in SHIPPED
    bad = SHIPPED.replace(old, new, 1)
    with pytest.raises(RoutesError) as refused:
        routes.parse(bad, "routes.yaml")
    line = bad[: bad.index(new)].count("\n") + 1
    assert any(f"routes.yaml:{line}:" in str(p) and message in str(p) for p in refused.value.problems), [
        str(p) for p in refused.value.problems
    ]
