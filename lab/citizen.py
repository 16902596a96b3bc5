"""A demo citizen: one SIPp call to the hotline that presses the given keys (RFC 2833).

Keys are a small dial-string script: 0-9 * # and A-D press a key (RFC 2833), ',' waits one
second, '~' speaks for about seven seconds (a G.711 recording) — e.g. "1,,,,,,~#" picks option 1,
waits for the beep of the after-hours message, speaks, and ends the message with '#'. Keys in
brackets are pressed as one fast burst, `burst_gap_ms` apart: "[" + "*" * 100 + "]1" floods the
menu with a hundred stars, then picks 1.

Used by `python -m lab call` and by the end-to-end tests. The SIPp scenario is generated per call
because each key is a separate pcap (SIPp's play_pcap_audio takes a literal file name).
The citizen hangs up after `talk_ms`; if Asterisk hangs up first (goodbye, department hung
up) its BYE is answered and the call still counts as successful.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

PCAP_DIR = Path("/usr/share/sip-tester")
PCAP_NAMES = {
    **{str(d): f"dtmf_2833_{d}.pcap" for d in range(10)},
    "*": "dtmf_2833_star.pcap",
    "#": "dtmf_2833_pound.pcap",
}
# RFC 4733 event codes. SIPp ships no pcap for A-D (keys no Chinese phone has, so no menu
# option can use them): they are the '1' capture with its event code rewritten.
EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11, "A": 12, "B": 13, "C": 14, "D": 15}
KEYS = frozenset(EVENTS)

INVITE = """
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "citizen" <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:{caller}@[local_ip]:[local_port]>
      Max-Forwards: 70
      Subject: 12345 demo citizen
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=citizen 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8 101
      a=rtpmap:8 PCMA/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15
      a=sendrecv
"""

IN_DIALOG = """
      {method} sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      [last_Via:]
      From: "citizen" <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: {cseq} {method}
      Contact: <sip:{caller}@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0
"""

OK_TO_BYE = """
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
"""


def _packets(key: str, index: int) -> list[tuple[int, int, bytearray]]:
    """The RTP packets of `key` as the `index`-th key of the call: (pcap sec, usec, frame)."""
    data = bytearray((PCAP_DIR / PCAP_NAMES.get(key, PCAP_NAMES["1"])).read_bytes())
    if struct.unpack_from("<I", data, 20)[0] != 1:
        raise ValueError(f"{PCAP_NAMES[key]}: expected an Ethernet capture")
    base_seq, timestamp = 1000 + index * 100, 8000 + index * 16000
    if base_seq + 100 > 0xFFFF:
        raise ValueError(f"at most 600 keys per call (RTP sequence numbers), key {index + 1} asked")
    offset, first_seq = 24, None
    packets = []
    while offset + 16 <= len(data):
        sec, usec, incl = struct.unpack_from("<III", data, offset)
        frame = offset + 16
        ip = frame + 14
        udp = ip + (data[ip] & 0x0F) * 4
        rtp = udp + 8
        struct.pack_into("!H", data, udp + 6, 0)  # no UDP checksum (valid for IPv4) after the edit
        seq = struct.unpack_from("!H", data, rtp + 2)[0]
        first_seq = seq if first_seq is None else first_seq
        struct.pack_into("!HI", data, rtp + 2, base_seq + (seq - first_seq) % 100, timestamp)
        data[rtp + 12] = EVENTS[key]
        packets.append((sec, usec, data[frame : frame + incl]))
        offset = frame + incl
    return packets


def _write_pcap(packets: list[tuple[int, int, bytearray]], out: Path) -> Path:
    header = (PCAP_DIR / PCAP_NAMES["1"]).read_bytes()[:24]
    body = b"".join(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame for sec, usec, frame in packets)
    out.write_bytes(header + body)
    return out


def dtmf_pcap(key: str, index: int, workdir: Path) -> Path:
    """The stock RFC 2833 pcap of `key`, renumbered as the `index`-th key of the call.

    SIPp replays a pcap's RTP headers as recorded, and the stock DTMF pcaps carry unrelated
    sequence numbers and timestamps (the '2' is "older" than the '6'). Asterisk drops an event
    whose timestamp is not newer than the last one it ended, so keys would silently vanish.
    Each key gets a sequence range and timestamp strictly above the previous key's.
    """
    return _write_pcap(_packets(key, index), workdir / f"dtmf-{index:02d}-{EVENTS[key]:02d}.pcap")


def dtmf_burst_pcap(keys: str, first_index: int, workdir: Path, gap_ms: int = 160) -> Path:
    """One pcap pressing `keys` back to back: a 100 ms tone every `gap_ms` (at least 150).

    That is as fast as a phone's keypad sends (ITU-T Q.24 asks receivers to take 40 ms tones
    with 40 ms gaps), and each tone ends before the next begins, with the gap Asterisk wants
    between digits (45 ms): faster keys make Asterisk queue and replay them itself, which is
    a test of Asterisk, not of the hotline.
    """
    if gap_ms < 150:
        raise ValueError(f"a burst needs at least 150 ms per key, got {gap_ms}")
    packets = []
    for n, key in enumerate(keys):
        stock = _packets(key, first_index + n)
        for slot, (_, _, frame) in enumerate([*stock[:5], *stock[-3:]]):
            tick = min(slot, 5)  # start, four updates 20 ms apart, the end packet sent three times
            ip = 14
            rtp = ip + (frame[ip] & 0x0F) * 4 + 8
            struct.pack_into("!H", frame, rtp + 14, tick * 160)  # event duration, 8 kHz samples
            at_us = n * gap_ms * 1000 + tick * 20_000
            packets.append((1_000_000 + at_us // 1_000_000, at_us % 1_000_000, frame))
    return _write_pcap(packets, workdir / f"dtmf-{first_index:02d}-burst{len(keys)}.pcap")


def _tokens(keys: str) -> list[str]:
    """The script as tokens: a key, ',', '~', or a bracketed burst of keys (without brackets)."""
    tokens, burst = [], None
    for ch in keys:
        if ch == "[" and burst is None:
            burst = ""
        elif ch == "]" and burst is not None:
            if burst:
                tokens.append(burst)
            burst = None
        elif burst is not None:
            if ch not in KEYS:
                raise ValueError(f"a burst holds keys only, got {ch!r}")
            burst += ch
        elif ch in KEYS or ch in ",~":
            tokens.append(ch)
        else:
            raise ValueError(
                f"keys may only contain 0-9, A-D, * and #, ',' (wait 1 s), '~' (speak) and [bursts], got {ch!r}"
            )
    if burst is not None:
        raise ValueError("a '[' burst is never closed")
    return tokens


SPEECH_PCAP = PCAP_DIR / "g711a.pcap"
SPEECH_MS = 7100  # length of g711a.pcap


def scenario(
    keys: str,
    caller: str = "13800138000",
    first_key_ms: int = 1500,
    gap_ms: int = 800,
    talk_ms: int = 3000,
    pcaps: list[Path] | None = None,
    via_proxy: bool = False,
) -> str:
    """SIPp UAC XML: call, wait, run the `keys` script, stay `talk_ms`, hang up.

    `pcaps` holds one file per key token (a burst is one token); by default the stock ones.
    via_proxy: the hotline is behind a record-routing proxy (cluster/kamailio.cfg): the ACK and
    BYE go to the answering node's Contact along the Record-Route set, as a phone's do.
    """
    tokens = _tokens(keys)
    if not caller.isdigit():
        raise ValueError(f"caller must be digits, got {caller!r}")
    presses = [t for t in tokens if t not in ",~"]
    if pcaps is None:
        if any(len(t) > 1 or t not in PCAP_NAMES for t in presses):
            raise ValueError("bursts and keys A-D need generated pcaps (place_call makes them)")
        pcaps = [PCAP_DIR / PCAP_NAMES[t] for t in presses]
    steps = []
    pressed, previous = 0, ""
    for token in tokens:
        if token == ",":
            steps.append('  <pause milliseconds="1000"/>')
        elif token == "~":
            steps.append(f'  <nop><action><exec play_pcap_audio="{SPEECH_PCAP}"/></action></nop>')
            steps.append(f'  <pause milliseconds="{SPEECH_MS}"/>')
        else:
            wait = first_key_ms if pressed == 0 else (200 if previous in ",~" else gap_ms)
            steps.append(f'  <pause milliseconds="{wait}"/>')
            steps.append(f'  <nop><action><exec play_pcap_audio="{pcaps[pressed]}"/></action></nop>')
            if len(token) > 1:  # a burst plays on its own thread: wait it out before the next step
                steps.append(f'  <pause milliseconds="{_burst_ms(token)}"/>')
            pressed += 1
        previous = token
    invite = INVITE.format(caller=caller)
    ack = IN_DIALOG.format(method="ACK", cseq=1, caller=caller).replace(
        "[last_Via:]", "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]"
    )
    bye = IN_DIALOG.format(method="BYE", cseq=2, caller=caller).replace(
        "[last_Via:]", "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]"
    )
    if via_proxy:
        ack = ack.replace(
            "ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0", "ACK [next_url] SIP/2.0\n      [routes]"
        )
        bye = bye.replace(
            "BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0", "BYE [next_url] SIP/2.0\n      [routes]"
        )
    rrs = ' rrs="true"' if via_proxy else ""
    return f"""<?xml version="1.0" encoding="UTF-8" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="12345 citizen pressing {escape(keys) or "nothing"}">
  <send retrans="500"><![CDATA[{invite}
    ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <!-- Asterisk may hang up on us at any point after answering (goodbye, department hung up):
       catch its BYE wherever we are. Placed before a mandatory receive, as SIPp requires. -->
  <recv request="BYE" optional="global" next="their_bye"/>
  <recv response="200" rtd="true"{rrs}/>
  <send><![CDATA[{ack}
    ]]></send>
{chr(10).join(steps)}
  <pause milliseconds="{talk_ms}"/>
  <send retrans="500"><![CDATA[{bye}
    ]]></send>
  <recv response="200" next="done"/>
  <label id="their_bye"/>
  <send><![CDATA[{OK_TO_BYE}
    ]]></send>
  <label id="done"/>
</scenario>
"""


@dataclass
class CallRun:
    returncode: int
    succeeded: bool
    stdout: str
    stderr: str
    workdir: Path


BURST_GAP_MS = 160


def _burst_ms(burst: str) -> int:
    return len(burst) * BURST_GAP_MS


def place_call(
    to: str,
    keys: str = "",
    *,
    caller: str = "13800138000",
    talk_ms: int = 3000,
    first_key_ms: int = 1500,
    gap_ms: int = 800,
    target: str = "127.0.0.1:5060",
    local_port: int = 5070,
    timeout_s: int = 120,
    workdir: Path | None = None,
    via_proxy: bool = False,
) -> CallRun:
    """Place one call with SIPp and wait for it to end (bounded by `timeout_s`)."""
    if not to.isdigit():
        raise ValueError(f"the number to call must be digits, got {to!r}")
    if shutil.which("sipp") is None:
        raise FileNotFoundError("sipp is not installed (apt-get install sip-tester)")
    workdir = workdir or Path(tempfile.mkdtemp(prefix="citizen-"))
    workdir.mkdir(parents=True, exist_ok=True)
    xml = workdir / "citizen.xml"
    pcaps, index = [], 0
    for token in _tokens(keys):
        if token in ",~":
            continue
        pcaps.append(
            dtmf_pcap(token, index, workdir)
            if len(token) == 1
            else dtmf_burst_pcap(token, index, workdir, BURST_GAP_MS)
        )
        index += len(token)
    xml.write_text(scenario(keys, caller, first_key_ms, gap_ms, talk_ms, pcaps, via_proxy), encoding="utf-8")
    # Each citizen needs its own SIP and media ports so several can call at once.
    media_port = 6000 + (local_port - 5070) * 10
    cmd = [
        "sipp",
        target,
        "-sf",
        str(xml),
        "-s",
        to,
        "-i",
        "127.0.0.1",
        "-p",
        str(local_port),
        "-mi",
        "127.0.0.1",
        "-mp",
        str(media_port),
        "-m",
        "1",
        "-l",
        "1",
        "-nostdin",
        "-timeout",
        f"{timeout_s}s",
        "-timeout_error",
        "-trace_err",
        "-error_file",
        str(workdir / "errors.log"),
        "-trace_msg",
        "-message_file",
        str(workdir / "messages.log"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s + 15, cwd=workdir)
    return CallRun(proc.returncode, proc.returncode == 0, proc.stdout, proc.stderr, workdir)
