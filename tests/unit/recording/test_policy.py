"""routes.yaml's `recording:` section: which answered calls are recorded, and its mistakes at FILE:LINE."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.errors import RoutesError
from ivr.recording.policy import RecordingPolicy
from ivr.routing import routes

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = (ROOT / "routes.yaml").read_text(encoding="utf-8")
SECTION_START = "recording:                      #"


def with_recording(section: str) -> str:
    """The shipped file with its `recording:` section replaced by `section`."""
    start = SHIPPED.index(SECTION_START)
    end = SHIPPED.index("\n\n", start)
    return SHIPPED[:start] + section.rstrip("\n") + SHIPPED[end:]


def line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


def test_the_shipped_table_records_nothing_until_the_centre_switches_it_on() -> None:
    policy = routes.parse(SHIPPED).recording
    assert not policy.records_anything
    assert not policy.records("merge", "市公安局") and not policy.records("operators")
    assert (policy.format, policy.directory) == ("wav", "/var/spool/asterisk/monitor/hotline")
    assert (policy.keep_days, policy.keep_message_days) == (180, 90)


def test_a_unit_setting_wins_over_its_mode_and_a_mode_over_the_default() -> None:
    text = with_recording(
        "recording:\n  record: on\n  modes: {interconnect: off, operators: on}\n"
        "  units: {市公安局: off, 市卫计委: on}\n  keep_days: 365\n  keep_message_days: 30\n"
    )
    policy = routes.parse(text).recording
    assert policy.records("merge", "市人社局") and policy.records("operators", "")
    assert not policy.records("merge", "市公安局")
    assert not policy.records("interconnect", "市安监局")
    assert policy.records("interconnect", "市卫计委")
    assert (policy.keep_days, policy.keep_message_days) == (365, 30)


def test_without_the_section_nothing_is_recorded() -> None:
    start = SHIPPED.index(SECTION_START)
    text = SHIPPED[:start] + SHIPPED[SHIPPED.index("\n\n", start) + 2 :]
    assert routes.parse(text).recording == RecordingPolicy()


@pytest.mark.parametrize(
    ("section", "needle", "message"),
    [
        ("recording:\n  record: maybe\n", "record: maybe", "recording.record must be one of on, off, got 'maybe'"),
        ("recording:\n  modes: {survey: on}\n", "modes:", "recording.modes: unknown mode 'survey'"),
        ("recording:\n  units: {市天文台: on}\n", "units:", "recording.units: '市天文台' is not the unit of any route"),
        ("recording:\n  format: mp3\n", "format: mp3", "must be one of wav, got 'mp3'"),
        ("recording:\n  directory: spool/calls\n", "directory:", "is not an absolute path without spaces"),
        ("recording:\n  keep_days: 0\n", "keep_days: 0", "must be between 1 and 3650, got 0"),
        ("recording:\n  colour: red\n", "colour", "colour"),
    ],
)
def test_mistakes_are_reported_at_their_line(section: str, needle: str, message: str) -> None:
    text = with_recording(section)
    with pytest.raises(RoutesError) as raised:
        routes.parse(text, "routes.yaml")
    said = str(raised.value)
    assert message in said, said
    assert f"routes.yaml:{line_of(text, needle)}:" in said, said
