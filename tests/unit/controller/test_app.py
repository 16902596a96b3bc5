"""The controller's routing table on reload: a refused edit keeps everything the running table had,
its holiday calendar included (what the gauge says, what office hours and deadlines use)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from pathlib import Path

from ivr.ari.client import AriSettings
from ivr.controller.app import Controller
from ivr.routing import routes
from ivr.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = (ROOT / "routes.yaml").read_text(encoding="utf-8")
NOTICE_2027 = """
calendar:
  notices:
    2027:
      reference: a test notice (not the real one)
      holidays:
        元旦: 2027-01-01..2027-01-03
      workdays: [2027-01-09]
"""


def controller(tmp_path: Path, text: str) -> Controller:
    path = tmp_path / "routes.yaml"
    path.write_text(text, encoding="utf-8")
    settings = Settings(
        ari=AriSettings(url="http://127.0.0.1:1/ari", username="hotline", password="not-used-here", app="hotline"),
        routes_path=path,
        calllog_path=tmp_path / "calllog.sqlite3",
        caller_hash_key=b"k" * 32,
        journal_path=tmp_path / "calllog.journal",
    )
    return Controller(settings, routes.load(path), clock=lambda: dt.datetime(2026, 12, 5, 10, 0))


def gauge(c: Controller, name: str) -> float | None:
    return c.metrics.registry.get_sample_value(name)


def test_a_refused_calendar_edit_keeps_the_running_calendar(tmp_path: Path) -> None:
    c = controller(tmp_path, SHIPPED + NOTICE_2027)
    try:
        running = c.table
        until = gauge(c, "hotline_calendar_covered_until_timestamp_seconds")
        assert until == dt.datetime(2029, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp()
        assert c.table.calendar.is_workday(dt.date(2027, 1, 9))  # the notice's make-up Saturday

        # the editor lists 2027-01-02 twice: refused, the 2027 notice stays in force
        broken = SHIPPED + NOTICE_2027.replace("[2027-01-09]", "[2027-01-09, 2027-01-02]")
        (tmp_path / "routes.yaml").write_text(broken, encoding="utf-8")
        assert c.reload() is False
        assert c.table is running and c.services.deadlines.calendar is running.calendar
        assert gauge(c, "hotline_calendar_covered_until_timestamp_seconds") == until

        # the notice removed: 2027 is provisional again, coverage ends a year earlier
        (tmp_path / "routes.yaml").write_text(SHIPPED, encoding="utf-8")
        assert c.reload() is True
        assert not c.table.calendar.is_workday(dt.date(2027, 1, 9))
        assert gauge(c, "hotline_calendar_covered_until_timestamp_seconds") == until - 366 * 86400
    finally:
        c.calllog.close()


async def test_ticket_moves_made_by_the_cli_are_pushed_to_partners_by_the_controller(tmp_path: Path) -> None:
    """`hotline tickets` runs in another process: its moves wait in the call log's outbox for the controller."""
    from ivr.handoff.webhook import Payload, WebhookTarget
    from ivr.ticketing.keys import KeyStore
    from ivr.ticketing.store import TicketBook
    from ivr.tickets import DeadlinePolicy, new_ticket

    ctl = controller(tmp_path, SHIPPED)
    opened = new_ticket("c1", "interconnect", "12315平台", "i", "r", dt.datetime(2026, 12, 5, 9, 0), DeadlinePolicy(3))
    ctl.calllog.start()
    ctl.calllog.ticket_opened(opened)
    ctl.calllog.close()
    TicketBook(ctl.calllog, outbox=True).act(opened.ticket_id, "accept", actor="cli:li")  # what the CLI does
    ctl.tickets_api.keys = KeyStore(tmp_path / "api-keys")
    ctl.tickets_api.keys.add("p12315", unit="12315平台", kind="partner", webhook="http://127.0.0.1:9/hook")
    submitted: list[tuple[WebhookTarget, Payload]] = []

    class Sender:
        def submit(self, target: WebhookTarget, payload: Payload) -> None:
            submitted.append((target, payload))

    ctl.webhooks = Sender()  # type: ignore[assignment]
    assert await ctl.push_outbox() == 1
    assert await ctl.push_outbox() == 0  # claimed: pushed once
    [(target, payload)] = submitted
    assert (target.name, payload.ticket_id, payload.to_json().decode().count('"state":"accepted"')) == (
        "p12315",
        opened.ticket_id,
        1,
    )


# -- the dial path against what Asterisk has loaded --------------------------------------------------------


async def test_without_the_ring_chains_loaded_the_dialplan_path_rings_over_ari_until_they_are(tmp_path: Path) -> None:
    c = controller(tmp_path, SHIPPED)
    c.settings = dataclasses.replace(c.settings, dial_path="dialplan")
    loaded = {"HOTLINE_CHAINS": ""}

    async def get_global(name: str) -> str:
        return loaded[name]

    c.ari.get_global = get_global  # type: ignore[method-assign]
    await c._check_chains()
    assert c.services.dial_path == "ari"  # a caller sent into a context Asterisk lacks would be hung up

    loaded["HOTLINE_CHAINS"] = c.table.digest  # rendered and reloaded: seen at the next reconnect
    await c._check_chains()
    assert c.services.dial_path == "dialplan"


async def test_the_share_refused_is_published_while_it_lasts_and_reset_once(tmp_path: Path) -> None:
    c = controller(tmp_path, SHIPPED)
    published: list[tuple[str, str]] = []

    async def set_global(name: str, value: str) -> None:
        published.append((name, value))

    c.ari.set_global = set_global  # type: ignore[method-assign]
    await c._publish_shedding()  # first probe: whatever a previous controller left is reset
    assert published == [("HOTLINE_SHED_PERCENT", "0")]
    await c._publish_shedding()
    assert len(published) == 1  # nothing to say while nothing is shed

    c.shedding.update(reached=45, refused=15)
    await c._publish_shedding()
    until = int(published[1][1]) - time.time()
    assert published[1][0] == "HOTLINE_SHED_UNTIL" and 0 < until <= 3  # expires unless renewed
    assert published[2] == ("HOTLINE_SHED_PERCENT", "33")
