"""Speech for SIPp phones that talk: SIPp's own G.711 a-law sample, as a raw payload stream.

SIPp's `rtp_stream` action loops a raw a-law file as RTP; `play_pcap_audio` sends a pcap once and
stops. A phone that speaks the whole time its call lasts (media flowing on the leg, as a real
phone's does) loops this payload: recordings (MixMonitor writes the audio that passes) and the
benchmark's recording cost need it.
"""

from __future__ import annotations

import struct
from pathlib import Path

SIPP_SPEECH = Path("/usr/share/sip-tester/g711a.pcap")


def alaw_payload(pcap: Path = SIPP_SPEECH) -> bytes:
    """The RTP payloads of a pcap of one G.711 stream (Ethernet, IPv4, UDP, RTP without extensions)."""
    data = pcap.read_bytes()
    out, at = bytearray(), 24
    while at + 16 <= len(data):
        (length,) = struct.unpack("<I", data[at + 8 : at + 12])
        packet = data[at + 16 : at + 16 + length]
        ihl = (packet[14] & 0x0F) * 4
        out += packet[14 + ihl + 8 + 12 :]
        at += 16 + length
    return bytes(out)


def speaking(scenario: Path, out: Path, speech: Path) -> Path:
    """`scenario` (a phone that answers) made to speak from its ACK on: `speech` looped as RTP."""
    text = scenario.read_text(encoding="utf-8")
    ack = '<recv request="ACK" rtd="true" crlf="true"/>'
    if ack not in text:
        ack = '<recv request="ACK" crlf="true"/>'
    if ack not in text:
        raise ValueError(f"{scenario}: no ACK to start speaking after")
    if not speech.exists():
        speech.write_bytes(alaw_payload())
    stream = f'<nop><action><exec rtp_stream="{speech},-1,8"/></action></nop>'
    out.write_text(text.replace(ack, ack + stream, 1), encoding="utf-8")
    return out
