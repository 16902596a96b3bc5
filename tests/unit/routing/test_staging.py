"""A staged table takes a stable share of callers, chosen by their keyed hash."""

from __future__ import annotations

from ivr import privacy
from ivr.routing import routes
from ivr.routing.staging import Stage, bucket, table_for
from tests.unit.routing.test_routes import GOOD

KEY = b"k" * 32


def test_a_caller_is_always_in_the_same_bucket_and_buckets_spread_evenly() -> None:
    hashes = [privacy.caller_hash(f"139{n:08d}", KEY) for n in range(10_000)]
    assert [bucket(h) for h in hashes[:50]] == [bucket(h) for h in hashes[:50]]
    staged = sum(1 for h in hashes if bucket(h) < 10)
    assert 850 <= staged <= 1150  # 10 % of callers, give or take sampling


def test_a_caller_without_a_hash_stays_on_the_live_table() -> None:
    assert bucket("") == 99


def test_callers_below_the_share_get_the_staged_table_and_the_others_the_live_one() -> None:
    live = routes.parse(GOOD, "routes.yaml")
    new = routes.parse(GOOD.replace('"1": {route: gongan}', '"1": {route: bianban}'), "new.yaml")
    stage = Stage(1, new, share=30)
    low = next(h for h in (privacy.caller_hash(f"1390000{n:04d}", KEY) for n in range(1000)) if bucket(h) < 30)
    high = next(h for h in (privacy.caller_hash(f"1390000{n:04d}", KEY) for n in range(1000)) if bucket(h) >= 30)
    assert table_for(live, stage, low) == (new, "staged")
    assert table_for(live, stage, high) == (live, "live")
    assert table_for(live, None, low) == (live, "live")
    assert table_for(new, stage, low) == (new, "live")  # promoted: the staged table is the live one
