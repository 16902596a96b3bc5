"""The operator's desk: which numbers an operator may transfer to, feature codes, and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.errors import TransferRefused
from ivr.operators.desk import Command, Desk, FeatureCodes, resolve, seat_token, token_seat
from ivr.routing import routes

TABLE = routes.load(Path(__file__).resolve().parents[3] / "routes.yaml")


def typed(keys: str) -> list[tuple[str, str]]:
    codes = FeatureCodes()
    out: list[tuple[str, str]] = []
    for key in keys:
        command = codes.feed(key)
        if command is not None:
            out.append((command.action, command.target))
    return out


def test_feature_codes_are_star_digit_number_hash_and_stray_keys_do_nothing() -> None:
    assert typed("*13372000#") == [("consult", "3372000")]
    assert typed("12*23372000#5#*5#") == [("three-way", "3372000"), ("complete", "")]
    assert typed("*4110#*6#*7#*8#") == [("emergency", "110"), ("cancel", ""), ("pause", ""), ("sign_out", "")]
    assert typed("*9123#") == [] and typed("#*#") == [] and typed("3372000#") == []
    assert typed("*1" + "1" * 30 + "#") == []  # too long: dropped, not truncated


def test_only_numbers_of_routes_yaml_resolve() -> None:
    assert resolve(TABLE, "3372000").unit == "市公安局"
    assert resolve(TABLE, "gongan").number == "3372000"
    police = resolve(TABLE, "110")
    assert (police.name, police.emergency, police.way) == ("police", True, "three-way")
    for bad in ("9999999", "", "3372000; Dial(PJSIP/x)", "PJSIP/110@departments"):
        with pytest.raises(TransferRefused, match="not a number in routes.yaml") as refused:
            resolve(TABLE, bad)
        assert refused.value.status == 422


async def test_the_desk_refuses_asks_it_cannot_queue_and_queues_nothing() -> None:
    desk = Desk()
    live = desk.open("call-1", "seat-1", TABLE)
    with pytest.raises(TransferRefused, match="no call call-2") as refused:
        desk.submit("call-2", Command("consult", "3372000"))
    assert refused.value.status == 404
    with pytest.raises(TransferRefused, match="not a number in routes.yaml"):
        desk.submit("call-1", Command("consult", "8888888"))
    with pytest.raises(TransferRefused, match="needs a target"):
        desk.submit("call-1", Command("blind"))
    with pytest.raises(TransferRefused, match="not an emergency line"):
        desk.submit("call-1", Command("emergency", "3372000"))
    with pytest.raises(TransferRefused, match="at seat seat-1, not seat-2") as refused:
        desk.submit("call-1", Command("consult", "3372000"), seat="seat-2")
    assert refused.value.status == 403
    assert live.commands.empty()

    desk.submit("call-1", Command("consult", "3372000"), seat="seat-1")
    assert live.commands.qsize() == 1
    desk.left(live)
    desk.ended("call-1")
    with pytest.raises(TransferRefused, match="has already ended") as refused:
        desk.submit("call-1", Command("cancel"))
    assert refused.value.status == 409


def test_each_seat_has_its_own_token_and_the_supervisor_one_for_all() -> None:
    key = b"k" * 32
    seats = ["seat-1", "seat-2"]
    assert token_seat(key, seat_token(key, "seat-2"), seats) == "seat-2"
    assert token_seat(key, seat_token(key, "*"), seats) == "*"
    assert token_seat(key, "nope", seats) is None
    assert token_seat(b"other-key" * 4, seat_token(key, "seat-1"), seats) is None
