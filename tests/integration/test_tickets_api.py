"""A unit closes the ticket of a real department call through the controller's tickets API (/api/v1).

A SIPp citizen presses 1 (市公安局), the SIPp department phone answers: the call's ticket opens dispatched
to 市公安局. The bureau's key then lists it, accepts, replies and closes it with signed requests to the
running controller — while a bad signature, a replayed request and another unit's key are refused with
nothing changed, and each refusal is logged. A partner platform's key for the same unit, with a webhook,
is told of each move, signed like a hand-off.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ivr.ticketing.api import signature
from ivr.ticketing.keys import ApiKey, KeyStore
from ivr.tickets import to_epoch
from lab.citizen import place_call
from tests.integration.conftest import (
    DEPARTMENTS_PORT,
    OFFICE_HOURS,
    PARTNER_SECRET,
    WEBHOOK_PORT,
    Controller,
    Partner,
    Phone,
    until,
)

pytestmark = pytest.mark.integration

BASE = "http://127.0.0.1:9345"


def request(
    key: ApiKey, method: str, path: str, body: Any = None, *, nonce: str = "", secret: str = ""
) -> tuple[int, dict[str, Any]]:
    raw = b"" if body is None else json.dumps(body, ensure_ascii=False).encode()
    ts, nonce = int(time.time()), nonce or secrets.token_hex(12)
    headers = {
        "X-Hotline-Key": key.key_id,
        "X-Hotline-Timestamp": str(ts),
        "X-Hotline-Nonce": nonce,
        "X-Hotline-Signature": signature(secret or key.secret, ts, nonce, method, path, raw),
        "Content-Type": "application/json",
    }
    req = urllib.request.Request(BASE + path, data=raw if method == "POST" else None, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_unit_closes_a_department_calls_ticket_through_the_api(
    start_controller: Callable[..., Controller],
    phones: Callable[..., Phone],
    partner_webhook: Partner,
    tmp_path: Path,
) -> None:
    keys = KeyStore(tmp_path / "api-keys")
    police = keys.add("gongan", unit="市公安局")
    water = keys.add("shuiwu", unit="市水务局")
    # A partner's key written as `api-keys add --partner --webhook` would, with the receiver's secret.
    watcher = {"key_id": "watch", "kind": "partner", "unit": "市公安局", "secret": PARTNER_SECRET}
    webhook = f"http://127.0.0.1:{WEBHOOK_PORT}/status"
    (tmp_path / "api-keys" / "watch.json").write_text(json.dumps({**watcher, "webhook": webhook, "created_at": 0}))
    phones(DEPARTMENTS_PORT, talk_ms=2000)
    controller = start_controller(env={"HOTLINE_API_KEYS": str(tmp_path / "api-keys")})

    call = place_call("12345", "1", caller="13912345678", talk_ms=15000)

    assert call.succeeded, call.stderr
    (row,) = controller.finished_calls()
    ticket_id = row["ticket_id"]
    assert ticket_id and row["unit"] == "市公安局"
    until(lambda: controller.calllog.tickets("ticket_id = ?", (ticket_id,)), what="the call's ticket")

    status, body = request(police, "GET", "/api/v1/tickets")
    assert status == 200 and [(t["ticket_id"], t["state"]) for t in body["tickets"]] == [(ticket_id, "dispatched")]
    accept = f"/api/v1/tickets/{ticket_id}/accept"

    # Refused, nothing changed: a wrong signature, another unit's key.
    assert request(police, "POST", accept, {}, secret="0" * 64) == (
        401,
        {"error": "bad signature", "field": "X-Hotline-Signature"},
    )
    assert request(water, "POST", accept, {}) == (403, {"error": f"ticket {ticket_id} is not 市水务局's"})
    assert request(water, "GET", "/api/v1/tickets") == (200, {"tickets": []})
    (ticket,) = controller.calllog.tickets("ticket_id = ?", (ticket_id,))
    assert (ticket["state"], ticket["version"]) == ("dispatched", 0)

    # Accepted once; the very same request again is a replay.
    assert request(police, "POST", accept, {}, nonce="accept-once-1")[0] == 200
    assert request(police, "POST", accept, {}, nonce="accept-once-1") == (
        409,
        {"error": "replayed: this nonce was used already", "field": "X-Hotline-Nonce"},
    )
    status, body = request(police, "POST", f"/api/v1/tickets/{ticket_id}/reply", {"text": "已出警处理"})
    assert (status, body["ticket"]["state"]) == (200, "replied")
    status, body = request(police, "POST", f"/api/v1/tickets/{ticket_id}/close", {"note": "群众满意"})
    assert (status, body["ticket"]["state"]) == (200, "closed")

    (ticket,) = controller.calllog.tickets("ticket_id = ?", (ticket_id,))
    assert (ticket["status"], ticket["state"], ticket["reply"], ticket["note"]) == (
        "closed",
        "closed",
        "已出警处理",
        "群众满意",
    )
    # Closed on the controller's clock (the lab's Tuesday morning), well within the deadline.
    assert to_epoch(dt.datetime.fromisoformat(OFFICE_HOURS)) <= ticket["closed_at"]
    assert ticket["closed_at"] <= ticket["deadline_at"]
    status, body = request(police, "GET", f"/api/v1/tickets/{ticket_id}")
    assert [(e["action"], e["actor"]) for e in body["events"]] == [
        ("open", "hotline"),
        ("accept", "unit:gongan"),
        ("reply", "unit:gongan"),
        ("close", "unit:gongan"),
    ]
    refused = controller.events("tickets_api_refused")
    assert [(e["key"], e["status"]) for e in refused] == [("gongan", 401), ("shuiwu", 403), ("gongan", 409)]
    assert police.secret not in controller.log()
    pushed = until(lambda: partner_webhook.received if len(partner_webhook.received) == 3 else None, what="3 pushes")
    # Delivered by concurrent workers: in any order (each carries the ticket's version to order them by).
    assert sorted((p["body"]["ticket"]["version"], p["verified"], p["body"]["action"]) for p in pushed) == [
        (1, True, "accept"),
        (2, True, "reply"),
        (3, True, "close"),
    ]
    assert {(p["path"], p["body"]["event"]) for p in pushed} == {("/status", "ticket_status")}
    assert {p["body"]["ticket"]["ticket_id"] for p in pushed} == {ticket_id}
