"""An operator's seat phone that types feature codes (RFC 4733) while it talks: a SIPp scenario written per test.

Like phone_answer.xml (answer after a short ring, talk, hang up; the other side's BYE answered
wherever it comes), with the operator's keys in between: `steps` are (milliseconds to wait, keys
to type), the keys sent as one burst of RFC 4733 events (lab.citizen.dtmf_burst_pcap) — e.g.
[(3000, "*13372000#"), (6000, "*5#")]: consult 市公安局 three seconds after answering, complete
six seconds later. After the last step the phone talks `talk_ms`, then hangs up.

    path = seat_scenario(workdir, [(3000, "*13372000#")], talk_ms=20000)
    Phone(5091, workdir, path, ...)   # or the integration tests' phones(5091, scenario=path)
"""

from __future__ import annotations

from pathlib import Path

from lab.citizen import BURST_GAP_MS, dtmf_burst_pcap

ANSWER_AND_TALK = Path(__file__).resolve().parent / "phone_answer.xml"


def seat_scenario(workdir: Path, steps: list[tuple[int, str]], talk_ms: int = 20000) -> Path:
    """Write the scenario (and its key pcaps) into `workdir`; its path."""
    workdir.mkdir(parents=True, exist_ok=True)
    lines, index = [], 0
    for wait_ms, keys in steps:
        pcap = dtmf_burst_pcap(keys, index, workdir, BURST_GAP_MS)
        index += len(keys)
        lines.append(f'  <pause milliseconds="{wait_ms}"/>')
        lines.append(f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>')
        lines.append(f'  <pause milliseconds="{len(keys) * BURST_GAP_MS + 200}"/>')
    lines.append(f'  <pause milliseconds="{talk_ms}"/>')
    xml = ANSWER_AND_TALK.read_text(encoding="utf-8")
    # The answering phone's scenario with the keys where it "talks" (its bare <pause/> takes -d).
    head, tail = xml.split("  <pause/>\n", 1)
    out = workdir / "seat.xml"
    out.write_text(head + "\n".join(lines) + "\n" + tail, encoding="utf-8")
    return out
