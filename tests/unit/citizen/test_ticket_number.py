"""The ticket number a citizen hears and types: 14 keypad digits that read back to the ticket id."""

from __future__ import annotations

import pytest

from ivr.citizen.ticket_number import digit_prompts, id_pattern, keypad_number


def test_the_keypad_number_is_the_date_without_century_and_the_hex_as_eight_decimal_digits() -> None:
    assert keypad_number("12345-20261205-7f3a9c") == "26120508338076"
    assert keypad_number("12345-20261205-000001") == "26120500000001"


def test_a_nodes_ticket_has_the_same_number_and_the_lookup_pattern_finds_it() -> None:
    assert keypad_number("12345-20261205-node1-7f3a9c") == "26120508338076"
    assert id_pattern("26120508338076") == ("12345-20261205-7f3a9c", "12345-20261205-%-7f3a9c")


@pytest.mark.parametrize("typed", ["", "2612050833807", "261205083380761", "26133108338076", "26120599999999", "2612A"])
def test_digits_that_cannot_be_a_ticket_number_match_nothing(typed: str) -> None:
    assert id_pattern(typed) is None


def test_anything_but_a_ticket_id_is_refused() -> None:
    with pytest.raises(ValueError, match="not a ticket id"):
        keypad_number("12345-2026-xyz")


def test_each_digit_is_its_own_prompt() -> None:
    assert digit_prompts("2610") == ["digit-2", "digit-6", "digit-1", "digit-0"]
