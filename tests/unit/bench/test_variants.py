"""The dial-path variants run's parts that need no lab: the crypt hash it compares with, its table, its options."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from bench.__main__ import main
from bench.variants import markdown, sha512_crypt


def test_the_crypt_variant_hashes_as_the_lab_did_before_and_the_hash_verifies() -> None:
    hashed = sha512_crypt("s3cret")
    assert hashed.startswith("$6$rounds=1000$")
    salt = hashed.rsplit("$", 1)[0].removeprefix("$6$")
    again = subprocess.run(
        ["openssl", "passwd", "-6", "-salt", salt, "-stdin"], input="s3cret", capture_output=True, text=True, check=True
    )
    assert again.stdout.strip() == hashed


def step(rate: float, asterisk: float, controller: float | None, requests: float | None) -> dict[str, Any]:
    cpu = {"asterisk": asterisk} | ({"controller": controller} if controller is not None else {})
    return {
        "rate": rate,
        "placed": 2400,
        "failed_total": 0,
        "cpu_ms_per_call": cpu,
        "ari_requests_per_call": requests,
        "invite_to_200": {"p99": 12.0},
        "dtmf_to_invite": {"p99": 30.0},
    }


def test_the_table_has_a_row_per_variant_with_its_costs_and_says_what_was_skipped() -> None:
    report: dict[str, Any] = {
        "started": "s",
        "finished": "f",
        "machine": {"cpu": "x", "cores": 2, "loadavg_at_start": ["0.1", "0.1", "0.1"]},
        "runs": {
            "A": {"what": "pure dialplan", "step": step(40, 10.0, None, None)},
            "plain": {
                "what": "plain",
                "step": step(40, 13.6, 4.1, 11.0),
                "calllog_rows": 2400,
                "leftover_channels": 0,
                "leftover_bridges": 0,
            },
            "dialplan": {"what": "dial in Asterisk", "skipped": "this checkout has no HOTLINE_DIAL_PATH"},
        },
        "valid": True,
    }
    table = markdown(report)
    assert "| A | pure dialplan | 40 | 2400 | 0 | 10.0 | — | — | 12.0 | 30.0 |" in table
    assert "| plain | plain | 40 | 2400 | 0 | 13.6 | 4.1 | 11.0 | 12.0 | 30.0 | 2400 | 0/0 |" in table
    assert "| dialplan | dial in Asterisk | skipped: this checkout has no HOTLINE_DIAL_PATH" in table
    assert "NOT a valid run" not in table
    assert "NOT a valid run" in markdown({**report, "valid": False, "noisy_steps": ["plain@40"]})


def test_an_unknown_variant_is_refused_by_name_before_anything_runs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--variants", "--only", "plain,fast"])
    assert exc.value.code == 2
    assert "unknown variant(s) fast" in capsys.readouterr().err
