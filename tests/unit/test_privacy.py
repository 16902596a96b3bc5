"""Caller numbers leave the call log only masked; the keyed hash matches repeat callers."""

from ivr.privacy import caller_hash, mask


def test_mobile_numbers_keep_prefix_and_last_four() -> None:
    assert mask("13812341234") == "138****1234"


def test_short_and_empty_numbers_reveal_little() -> None:
    assert mask("3372000") == "33***00"
    assert mask("1234") == "****"
    assert mask("") == "anonymous"


def test_the_hash_is_stable_per_key_and_differs_across_keys() -> None:
    assert caller_hash("13812341234", b"k1") == caller_hash("13812341234", b"k1")
    assert caller_hash("13812341234", b"k1") != caller_hash("13812341234", b"k2")
    assert "13812341234" not in caller_hash("13812341234", b"k1")
