"""A ticket number a citizen can hear, write down and type back on a phone's keypad.

A ticket id (ivr.tickets) is `12345-<YYYYMMDD>-[<node>-]<6 hex>`: letters a-f and a node's name
cannot be typed on a keypad. The number said to the citizen is the id's keypad form, 14 digits:
the date without the century (YYMMDD) and the 6 hex digits as an 8-digit decimal, e.g.
12345-20261205-7f3a9c -> 261205 08338076. It is read back to the same id; a cluster node's name
is not in it, so a typed number matches a node's ticket by date and number (two nodes opening the
same number on the same day is possible in principle: the lookup then refuses to guess).
"""

from __future__ import annotations

import datetime as dt
import re

from ivr.tickets import TICKET_ID_RE

KEYPAD_DIGITS = 14
_ID_PARTS = re.compile(r"12345-(?P<date>[0-9]{8})-(?:[a-z0-9]{1,12}-)?(?P<hex>[0-9a-f]{6})")


def keypad_number(ticket_id: str) -> str:
    """The 14 digits a citizen hears and types for `ticket_id`."""
    match = _ID_PARTS.fullmatch(ticket_id)
    if match is None:
        raise ValueError(f"{ticket_id!r} is not a ticket id")
    return f"{match['date'][2:]}{int(match['hex'], 16):08d}"


def id_pattern(typed: str) -> tuple[str, str] | None:
    """The ids `typed` can stand for: (the id without a node, a LIKE pattern for a node's), or None
    when the digits cannot be a ticket number (wrong length, no such date, number out of range)."""
    if len(typed) != KEYPAD_DIGITS or not typed.isdigit():
        return None
    try:
        day = dt.date(2000 + int(typed[:2]), int(typed[2:4]), int(typed[4:6]))
    except ValueError:
        return None
    slot = int(typed[6:])
    if slot > 0xFFFFFF:
        return None
    date, hexpart = f"{day:%Y%m%d}", f"{slot:06x}"
    plain = f"12345-{date}-{hexpart}"
    assert TICKET_ID_RE.fullmatch(plain)
    return plain, f"12345-{date}-%-{hexpart}"


def digit_prompts(digits: str) -> list[str]:
    """The prompt names that say `digits` one by one (recordings/prompts.yaml digit-0 .. digit-9)."""
    return [f"digit-{d}" for d in digits]
