"""A phone that answers and then presses keys: the citizen a 回访 (follow-up) call reaches.

phone_answer.xml with, after the ACK, a pause and each key's RFC 2833 pcap (lab.citizen.dtmf_pcap,
renumbered so Asterisk takes every key); then it stays on the line (the phone's -d) until either
side hangs up. Start it with lab.sipp.phone.Phone(port, workdir, keys_phone(...)).
"""

from __future__ import annotations

from pathlib import Path

from lab.citizen import KEYS, dtmf_pcap
from lab.sipp.phone import SCENARIOS

ACK = '<recv request="ACK" rtd="true" crlf="true"/>'


def keys_phone(keys: str, workdir: Path, first_key_ms: int = 2000, gap_ms: int = 800) -> Path:
    """The scenario file (in `workdir`) of a phone that answers and presses `keys`."""
    if not keys or any(k not in KEYS for k in keys):
        raise ValueError(f"keys must be one or more of 0-9, *, #, A-D, got {keys!r}")
    workdir.mkdir(parents=True, exist_ok=True)
    steps = []
    for n, key in enumerate(keys):
        steps.append(f'  <pause milliseconds="{first_key_ms if n == 0 else gap_ms}"/>')
        steps.append(f'  <nop><action><exec play_pcap_audio="{dtmf_pcap(key, n, workdir)}"/></action></nop>')
    text = (SCENARIOS / "phone_answer.xml").read_text(encoding="utf-8")
    assert text.count(ACK) == 1
    out = workdir / f"phone-keys-{keys}.xml"
    out.write_text(text.replace(ACK, ACK + "\n" + "\n".join(steps)), encoding="utf-8")
    return out
