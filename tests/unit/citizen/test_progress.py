"""What the progress query says, and that every word of it has a prompt."""

from __future__ import annotations

from pathlib import Path

import yaml

from ivr.citizen.progress import STATES, TicketProgress, spoken
from ivr.prompts import plan
from ivr.routing import routes
from ivr.tickets import to_epoch

ROOT = Path(__file__).resolve().parents[3]


def test_state_and_due_date_are_said_after_the_number() -> None:
    import datetime as dt

    ticket = TicketProgress("12345-20261205-000001", "replied", to_epoch(dt.datetime(2026, 12, 10, 9, 30)))
    assert spoken(ticket) == [
        "progress-ticket",
        *[f"digit-{d}" for d in "26120500000001"],
        "ticket-state-replied",
        "progress-due",
        "month-12",
        "day-10",
        "hour-9",
    ]


def test_a_state_without_its_own_prompt_is_said_in_general_words() -> None:
    assert "ticket-state-other" in spoken(TicketProgress("12345-20261205-000001", "escalated", 0.0))


def test_every_prompt_the_query_can_say_is_made_at_setup() -> None:
    static = yaml.safe_load((ROOT / "recordings" / "prompts.yaml").read_text(encoding="utf-8"))
    texts = plan(routes.load(ROOT / "routes.yaml"), static)
    names = {f"ticket-state-{s}" for s in (*STATES, "other")} | {f"digit-{d}" for d in range(10)}
    names |= (
        {f"month-{m}" for m in range(1, 13)} | {f"day-{d}" for d in range(1, 32)} | {f"hour-{h}" for h in range(24)}
    )
    assert names <= texts.keys()
    assert (texts["month-12"], texts["day-31"], texts["hour-0"], texts["day-10"]) == (
        "十二月",
        "三十一日",
        "零时",
        "十日",
    )
