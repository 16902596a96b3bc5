"""One load step: SIPp citizens at a fixed rate for a bounded number of calls, and what it measured.

A step is one SIPp UAC process (`-r RATE -m CALLS`, a hard `-timeout`) against a target, while
a department phone (SIPp UAS, started per step so its log holds this step's calls only) answers
the outbound legs. Everything is read back from SIPp's own files:

- the statistics file (-trace_stat): calls created, successful, failed by SIPp's reasons,
  retransmissions, watchdog trips;
- the counts file (-trace_counts): retransmissions of the INVITE itself;
- the response-time file (-trace_rtt, partition 1): INVITE -> 200 OK per call;
- both sides' logs (-trace_logs, gettimeofday on this host's clock): the citizen's key press,
  "refused" and "early_bye" calls, the department's INVITE and 200 OK per caller number.

A call counts as failed if SIPp failed it, if it was refused (4xx-6xx), or if Asterisk hung
up on the citizen before the citizen did (the call never reached, or lost, the department).
"""

from __future__ import annotations

import csv
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.citizen import dtmf_pcap
from lab.sipp.phone import Phone

SCENARIOS = Path(__file__).resolve().parent / "sipp"
# answer -> key press, and key press -> the citizen's BYE. The key is pressed during the menu
# prompt (barge-in); the citizen stays long enough for "connecting" (2.7 s), the department's
# ring (0.1 s) and about a second of talk, then hangs up first, in both flows alike.
KEY_MS = 800
TALK_MS = 4500
CALL_SECONDS = (KEY_MS + TALK_MS) / 1000 + 0.3

# SIPp's failure columns in the statistics file (cumulative), as reported reasons.
SIPP_FAILURES = {
    "FailedCannotSendMessage(C)": "cannot_send",
    "FailedMaxUDPRetrans(C)": "max_udp_retrans",
    "FailedUnexpectedMessage(C)": "unexpected_message",
    "FailedCallRejected(C)": "rejected",
    "FailedCmdNotSent(C)": "cmd_not_sent",
    "FailedRegexpDoesntMatch(C)": "regexp",
    "FailedRegexpHdrNotFound(C)": "regexp_header",
    "FailedOutboundCongestion(C)": "outbound_congestion",
    "FailedTimeoutOnRecv(C)": "timeout_on_recv",
    "FailedTimeoutOnSend(C)": "timeout_on_send",
    "FailedTcpConnect(C)": "tcp_connect",
    "FailedTcpClosed(C)": "tcp_closed",
}


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))  # nearest rank
    return ordered[k]


def dist(values: list[float]) -> dict[str, float | int | None]:
    """p50/p95/p99 in milliseconds (values are seconds)."""
    ms = [v * 1000 for v in values]
    return {
        "n": len(ms),
        "p50": _r(percentile(ms, 50)),
        "p95": _r(percentile(ms, 95)),
        "p99": _r(percentile(ms, 99)),
        "max": _r(max(ms) if ms else None),
    }


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


@dataclass
class Endpoints:
    """Where a step's citizens call from and to."""

    source_ip: str  # 127.0.0.1 = the carrier (controller flow), 127.0.0.3 = the bench endpoint (dialplan)
    target: str = "127.0.0.1:5060"
    sip_port: int = 5200
    media_port: int = 7000
    phone_port: int = 5080
    phone_media_port: int = 7400


@dataclass
class StepResult:
    label: str
    rate: float
    planned: int
    placed: int = 0
    ok: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    retransmissions: int = 0
    invite_retransmissions: int = 0
    max_concurrent: int = 0
    watchdog: int = 0
    seconds: float = 0.0
    invite_to_200: dict[str, Any] = field(default_factory=dict)
    dtmf_to_invite: dict[str, Any] = field(default_factory=dict)
    answer_to_bridge: dict[str, Any] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)  # process label -> mean CPU % over the step
    ari_requests: int | None = None  # REST requests the controller sent Asterisk during the step (B only)
    sipp_exit: int = 0
    notes: list[str] = field(default_factory=list)
    # raw per-call data kept for the caller (not serialised)
    phone_answers: dict[str, float] = field(default_factory=dict, repr=False)
    dtmf_at: dict[str, float] = field(default_factory=dict, repr=False)

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())

    @property
    def failure_ratio(self) -> float:
        return self.failed_total / self.placed if self.placed else 1.0

    @property
    def achieved_rate(self) -> float:
        return self.placed / self.seconds if self.seconds else 0.0

    def passed(self, max_failure_ratio: float = 0.005) -> bool:
        return self.placed >= self.planned and self.failure_ratio < max_failure_ratio and not self.watchdog

    def summary(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k not in ("phone_answers", "dtmf_at")}
        data["failed_total"] = self.failed_total
        data["failure_ratio"] = round(self.failure_ratio, 5)
        data["passed"] = self.passed()
        data["cpu_ms_per_call"] = self.cpu_ms_per_call()
        data["ari_requests_per_call"] = (
            round(self.ari_requests / self.placed, 2) if self.ari_requests is not None and self.placed else None
        )
        return data

    def cpu_ms_per_call(self) -> dict[str, float]:
        """Each measured process's CPU time over the step (sampled from SIPp's start to its end, when
        every call is over), shared out over the calls placed."""
        if not self.placed:
            return {}
        return {
            name: round(percent * 10 * self.seconds / self.placed, 2)
            for name, percent in self.cpu.items()
            if name in ("asterisk", "controller")
        }


def _template(src: Path, out: Path, **fields: str) -> Path:
    text = src.read_text(encoding="utf-8")
    for key, value in fields.items():
        text = text.replace(key, value)
    out.write_text(text, encoding="utf-8")
    return out


def _log_lines(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return [line.split() for line in path.read_text(errors="replace").splitlines() if line.strip()]


def _stamp(sec: str, usec: str) -> float:
    return float(sec) + float(usec) / 1e6


def _last_stat_row(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter=";"))
    return rows[-1] if rows else {}


def _max_stat(path: Path, column: str) -> int:
    if not path.exists():
        return 0
    with path.open(newline="") as fh:
        return max((int(float(r.get(column) or 0)) for r in csv.DictReader(fh, delimiter=";")), default=0)


def run_step(
    label: str,
    rate: float,
    calls: int,
    workdir: Path,
    ep: Endpoints,
    *,
    caller_prefix: str,
    sample: Callable[[], Callable[[], dict[str, float]]] | None = None,
    max_seconds: float | None = None,
    scenario: str | Path = "citizen.xml",
    talk_ms: int = TALK_MS,
    phone_scenario: Path = SCENARIOS / "department.xml",
) -> StepResult:
    """Place `calls` calls at `rate` calls/s and measure them (bounded by `max_seconds`).

    `talk_ms` is the key press -> the citizen's BYE; `scenario` and `phone_scenario` (a path, or a
    file of bench/sipp) are the citizen's and the department phone's SIPp scenarios.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    pcap = dtmf_pcap("1", 0, workdir)
    xml = _template(
        SCENARIOS / scenario,
        workdir / "citizen.xml",
        CALLER_PREFIX=caller_prefix,
        DTMF_PCAP=str(pcap),
        KEY_MS=str(KEY_MS),
        TALK_MS=str(talk_ms),
    )
    call_seconds = (KEY_MS + talk_ms) / 1000 + 0.3
    bound = max_seconds or (calls / rate + call_seconds + 30)
    limit = max(10, int(rate * (call_seconds + 15)))
    result = StepResult(label, rate, calls)
    # Talks far longer than any citizen stays: the citizen always hangs up first (department.xml).
    phone = Phone(
        ep.phone_port,
        workdir,
        phone_scenario,
        talk_ms=600_000,
        rtp_port=ep.phone_media_port,
        trace_logs=True,
    ).start()
    stop_sampling = sample() if sample else None
    started = time.monotonic()
    try:
        with (workdir / "citizen-stderr.log").open("wb") as err:
            proc = subprocess.run(
                [
                    "sipp",
                    ep.target,
                    "-sf",
                    str(xml),
                    "-s",
                    "12345",
                    "-i",
                    ep.source_ip,
                    "-p",
                    str(ep.sip_port),
                    "-mi",
                    ep.source_ip,
                    "-mp",
                    str(ep.media_port),
                    "-r",
                    f"{rate:g}",
                    "-rp",
                    "1000",
                    "-m",
                    str(calls),
                    "-l",
                    str(limit),
                    "-nostdin",
                    "-timeout",
                    f"{int(bound)}s",
                    "-recv_timeout",
                    "15000",
                    "-trace_stat",
                    "-stf",
                    str(workdir / "stat.csv"),
                    "-fd",
                    "1",
                    "-trace_rtt",
                    "-rtt_freq",
                    "1",
                    "-trace_counts",
                    "-trace_logs",
                    "-log_file",
                    str(workdir / "citizen.log"),
                    "-trace_err",
                    "-error_file",
                    str(workdir / "citizen-errors.log"),
                ],
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                timeout=bound + 30,
                check=False,
            )
        result.sipp_exit = proc.returncode
    finally:
        result.seconds = time.monotonic() - started
        if stop_sampling:
            result.cpu = stop_sampling()
        time.sleep(0.5)  # the last BYEs reach the phone
        phone.stop()
    _read_results(result, workdir, caller_prefix)
    return result


def _read_results(result: StepResult, workdir: Path, prefix: str) -> None:
    stat = workdir / "stat.csv"
    row = _last_stat_row(stat)
    if not row:
        result.notes.append("no SIPp statistics (SIPp did not run?)")
        result.failed["no_statistics"] = result.planned
        return
    result.placed = int(float(row.get("TotalCallCreated") or 0))
    sipp_ok = int(float(row.get("SuccessfulCall(C)") or 0))
    for column, reason in SIPP_FAILURES.items():
        n = int(float(row.get(column) or 0))
        if n:
            result.failed[reason] = n
    result.retransmissions = int(float(row.get("Retransmissions(C)") or 0))
    result.watchdog = int(float(row.get("WatchdogMajor(C)") or 0)) + int(float(row.get("WatchdogMinor(C)") or 0))
    result.max_concurrent = _max_stat(stat, "CurrentCall")
    errors = workdir / "citizen-errors.log"
    if errors.exists() and "watchdog" in errors.read_text(errors="replace").lower():
        result.watchdog = max(result.watchdog, 1)
    # The INVITE is the first message of the counts file.
    counts = sorted(workdir.glob("citizen_*_counts.csv"))
    if counts:
        with counts[-1].open(newline="") as fh:
            for r in csv.DictReader(fh, delimiter=";"):
                if r.get("Message") == "INVITE" or "INVITE" in (r.get("Message") or ""):
                    result.invite_retransmissions = int(float(r.get("Retrans") or 0))
                    break

    citizen = _log_lines(workdir / "citizen.log")
    refused = Counter(f"refused_{int(float(p[2]))}" if len(p) > 2 else "refused" for p in citizen if p[0] == "refused")
    early = sum(1 for p in citizen if p[0] == "early_bye")
    result.failed.update(refused)
    if early:
        result.failed["hung_up_before_talk"] = early
    result.dtmf_at = {p[1]: _stamp(p[2], p[3]) for p in citizen if p[0] == "dtmf" and len(p) >= 4}
    byes = {p[1]: _stamp(p[2], p[3]) for p in citizen if p[0] == "bye" and len(p) >= 4}

    phone = _log_lines(workdir / "phone.log")
    invites = {p[1]: _stamp(p[2], p[3]) for p in phone if p[0] == "invite" and len(p) >= 4 and p[1].startswith(prefix)}
    result.phone_answers = {
        p[1]: _stamp(p[2], p[3]) for p in phone if p[0] == "answer" and len(p) >= 4 and p[1].startswith(prefix)
    }
    # SIPp counts refused and early-BYE calls as successful scenarios; they are not. Nor is a
    # call whose citizen hung up (on schedule) before the department answered: too slow.
    connected = sum(1 for c, bye in byes.items() if c in result.phone_answers and result.phone_answers[c] < bye)
    completed = max(0, sipp_ok - sum(refused.values()) - early)
    result.ok = min(completed, connected)
    if completed > result.ok:
        result.failed["not_connected_in_time"] = completed - result.ok
    deltas = [invites[c] - t for c, t in result.dtmf_at.items() if c in invites]
    result.dtmf_to_invite = dist(deltas)

    rtts: list[float] = []
    for path in sorted(workdir.glob("citizen_*_rtt.csv")):
        with path.open(newline="") as fh:
            for rec in csv.reader(fh, delimiter=";"):
                if len(rec) >= 3 and rec[2].strip() == "1":
                    try:
                        rtts.append(float(rec[1]) / 1000)
                    except ValueError:
                        continue
    result.invite_to_200 = dist(rtts)


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else 0.0
