"""The short soak (RELIABILITY.md row 13): mixed flows with the three faults and a SIP scanner.

The full soak is a manual command (`python -m bench.soak`, 20 000 calls); this is the same code
at a few hundred calls, so it never rots and every submission proves the accounting holds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import soak
from tests.integration.conftest import Ari

pytestmark = pytest.mark.integration


def test_a_short_soak_with_faults_and_a_scanner_loses_no_record_and_leaks_nothing(
    asterisk: Ari, tmp_path: Path
) -> None:
    run = soak.Soak(calls=600, rate=5.0, faults=True, scanner=True, workdir=tmp_path / "soak", max_seconds=600)
    result = soak.run(run)
    print(result)

    assert soak.verdict(result, scanner=True) == []
    assert result["faults"] == ["fault ws_drop", "fault controller_kill", "fault asterisk_restart"]
    assert result["answered"] >= 0.9 * result["calls_planned"]
    assert result["answered_with_record"] + result["fallback_calls"] >= result["answered"]
