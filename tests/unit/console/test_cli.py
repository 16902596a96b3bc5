"""`hotline operators`: a supervisor's phone seat given, shown and refused for an operator left without one."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ivr.cli import main


def test_a_supervisor_gets_a_phone_seat_and_an_operator_cannot_lose_theirs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOTLINE_CONSOLE_ACCOUNTS", str(tmp_path / "accounts.json"))
    (tmp_path / "pw").write_text("a long enough password\n", encoding="utf-8")
    runner = CliRunner()
    for args in (
        ["operators", "add", "boss", "--role", "supervisor", "--password-file", str(tmp_path / "pw")],
        ["operators", "add", "li", "--seat", "seat-1", "--password-file", str(tmp_path / "pw")],
    ):
        assert runner.invoke(main, args).exit_code == 0
    done = runner.invoke(main, ["operators", "seat", "boss", "seat-2"])
    assert done.exit_code == 0 and "boss (supervisor): seat seat-2" in done.output
    listed = runner.invoke(main, ["operators", "list"]).output.splitlines()
    assert [line.split() for line in listed[1:]] == [["boss", "supervisor", "seat-2"], ["li", "operator", "seat-1"]]
    refused = runner.invoke(main, ["operators", "seat", "li", ""])
    assert refused.exit_code != 0 and "an operator account needs its seat" in refused.output
