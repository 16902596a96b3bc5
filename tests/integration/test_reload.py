"""routes.yaml changes reach a running controller without a restart; a broken file never does."""

from __future__ import annotations

import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lab.citizen import place_call
from tests.integration.conftest import DEPARTMENTS_PORT, REPO, Controller, Phone, until

pytestmark = pytest.mark.integration

CITIZEN = "13912345678"


def test_a_broken_file_is_refused_and_a_good_one_applies_to_new_calls_only(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone], tmp_path: Path
) -> None:
    shipped = (REPO / "routes.yaml").read_text(encoding="utf-8")
    routes = tmp_path / "routes.yaml"
    routes.write_text(shipped, encoding="utf-8")
    department = phones(DEPARTMENTS_PORT, talk_ms=1000)
    controller = start_controller(routes)

    with ThreadPoolExecutor(2) as pool:
        # A call that arrives now and presses 1 only after both edits: it keeps its table.
        early = pool.submit(place_call, "12345", ",,,,,,1", caller=CITIZEN, first_key_ms=200, talk_ms=15000)
        until(lambda: controller.saw("call_arrived"), what="the first call to arrive")

        routes.write_text(shipped.replace('number: "3372000"', 'number: "33720OO"'), encoding="utf-8")
        controller.proc.send_signal(signal.SIGHUP)
        [refused] = until(lambda: controller.events("routes_reload_refused"), what="the broken file to be refused")
        assert any("routes.yaml:" in p and "is not a phone number" in p for p in refused["problems"]), refused

        # The operator fixes it, and redirects key 1 to the justice bureau.
        routes.write_text(shipped.replace('"1": {route: gongan}', '"1": {route: sifa}'), encoding="utf-8")
        controller.proc.send_signal(signal.SIGHUP)
        until(lambda: controller.saw("routes_reloaded"), what="the fixed file to load")

        late = pool.submit(place_call, "12345", "1", caller=CITIZEN, local_port=5071, talk_ms=15000)
        assert early.result().succeeded and late.result().succeeded

    first, second = controller.finished_calls(2)
    assert (first["unit"], first["target_number"]) == ("市公安局", "3372000")  # the table it started with
    assert (second["unit"], second["target_number"]) == ("市司法局", "3023804")
    assert first["routes_version"] != second["routes_version"]
    assert sorted(u.split("@")[0] for u in department.invites()) == ["sip:3023804", "sip:3372000"]


def test_an_edited_file_is_picked_up_without_a_signal(
    start_controller: Callable[..., Controller], tmp_path: Path
) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text((REPO / "routes.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    controller = start_controller(routes)

    routes.write_text(routes.read_text(encoding="utf-8").replace("version: 1 ", "version: 2 "), encoding="utf-8")

    [refused] = until(
        lambda: controller.events("routes_reload_refused"), timeout=10, what="the watcher to refuse the edit"
    )
    assert any("version must be between 1 and 1" in p for p in refused["problems"]), refused
