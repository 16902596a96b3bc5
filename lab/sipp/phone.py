"""A SIPp phone: a UAS standing in for a department line, an operator seat or a partner trunk.

The counterpart of the SIPp citizen (lab/citizen.py), playing the scenarios beside this module
(phone_answer.xml, phone_busy.xml, ...) or any other given by path. One class for the
end-to-end tests, the benchmark and the soak, so every phone starts, is known to be up and
stops the same way:

- up means the phone's own process holds its SIP port: SIPp writes its trace files a few
  milliseconds before it binds, so a file appearing is not enough, and a phone that lost the
  port to another process exits instead;
- stopped with SIGUSR1, which lets the calls in progress end with their BYE (`-m N` would drop
  them), then killed if it does not stop in time.

Files in `workdir`, named after the phone: `NAME-stderr.log`, `NAME-errors.log`, and on request
the message trace `NAME-messages.log` (every SIP message: `invites()` reads it) and the log
actions of the scenario `NAME.log` (the benchmark's department scenario logs its timings there).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from lab.daemon import PidFile

SCENARIOS = Path(__file__).resolve().parent


def media_port(sip_port: int) -> int:
    """The RTP port of the phone on `sip_port`: clear of Asterisk's (10000-20000) and the citizens'."""
    return 6000 + (sip_port - 5000) * 20


def stop_process(proc: subprocess.Popen[Any] | None, sig: int, timeout: float) -> int | None:
    """Ask `proc` to stop with `sig`, SIGKILL it after `timeout` s; its exit code (None: never started)."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class Phone:
    """`sipp -sf SCENARIO` answering on 127.0.0.1:`port`, holding each call `talk_ms`."""

    def __init__(
        self,
        port: int,
        workdir: Path,
        scenario: str | Path = "phone_answer.xml",
        *,
        talk_ms: int = 2000,
        rtp_port: int | None = None,
        name: str = "phone",
        trace_msg: bool = False,
        trace_logs: bool = False,
        pid_file: Path | None = None,
    ) -> None:
        self.port = port
        self.workdir = workdir
        self.scenario = scenario if isinstance(scenario, Path) else SCENARIOS / scenario
        self.talk_ms = talk_ms
        self.rtp_port = media_port(port) if rtp_port is None else rtp_port
        self.name = name
        self.trace_msg = trace_msg
        self.trace_logs = trace_logs
        # With a pid file: a daemon of the lab (its own session), stopped later by that pid.
        self.pid_file = PidFile(pid_file, "sipp") if pid_file else None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def stderr_file(self) -> Path:
        return self.workdir / f"{self.name}-stderr.log"

    @property
    def messages_file(self) -> Path:
        return self.workdir / f"{self.name}-messages.log"

    @property
    def log_file(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self, timeout: float = 5.0) -> Phone:
        """Start the phone and wait until it holds its port; fail with its stderr if it does not."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        cmd = [
            "sipp",
            "-sf",
            str(self.scenario),
            "-i",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-mi",
            "127.0.0.1",
            "-mp",
            str(self.rtp_port),
            "-d",
            str(self.talk_ms),
            "-nostdin",
            "-trace_err",
            "-error_file",
            str(self.workdir / f"{self.name}-errors.log"),
        ]
        if self.trace_msg:
            cmd += ["-trace_msg", "-message_file", str(self.messages_file)]
        if self.trace_logs:
            cmd += ["-trace_logs", "-log_file", str(self.log_file)]
        with self.stderr_file.open("wb") as stderr:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                cmd,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=self.pid_file is not None,
            )
        if self.pid_file:
            self.pid_file.write(self.proc.pid)
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and not self._holds_port():
            if time.monotonic() > deadline:
                self.stop()
                break
            time.sleep(0.02)
        if self.proc.poll() is not None:
            if self.pid_file:
                self.pid_file.remove()
            raise RuntimeError(
                f"SIPp {self.name} on :{self.port} ({self.scenario.name}) is not up "
                f"(exit {self.proc.returncode}): "
                f"{self.stderr_file.read_text(errors='replace')[-1000:]}"
            )
        return self

    def _holds_port(self) -> bool:
        """Whether our process has a UDP socket bound to the port (/proc/net/udp, then its fds)."""
        assert self.proc is not None
        sockets = set()
        try:
            for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == self.port:
                    sockets.add(f"socket:[{fields[9]}]")
            return any(os.readlink(fd) in sockets for fd in Path(f"/proc/{self.proc.pid}/fd").iterdir())
        except OSError:  # the process is gone, or closed a descriptor while we looked
            return False

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGUSR1 (calls in progress end with their BYE), SIGKILL after `timeout` s; the exit code.

        A phone of the lab found by its pid file (started by another process) is stopped the
        same way; its exit code is not ours to see (None).
        """
        if self.proc is None:
            if self.pid_file:
                self.pid_file.stop(self.name, signal.SIGUSR1, timeout)
            return None
        code = stop_process(self.proc, signal.SIGUSR1, timeout)
        if self.pid_file:
            self.pid_file.remove()
        return code

    def running_pid(self) -> int | None:
        return self.pid_file.pid() if self.pid_file else None

    def messages(self) -> str:
        """The message trace so far (empty without `trace_msg`)."""
        return self.messages_file.read_text(errors="replace") if self.messages_file.exists() else ""

    def invites(self) -> list[str]:
        """Request-URIs of the INVITEs this phone received, one per call: a retransmitted INVITE
        (same Call-ID, sent again when the phone was slow to answer on a loaded machine) counts once."""
        uris: list[str] = []
        seen: set[str] = set()
        uri = ""
        for line in self.messages().splitlines():
            if line.startswith("INVITE sip:"):
                uri = line.split()[1]
            elif uri and line.lower().startswith("call-id:"):
                call_id = line.split(":", 1)[1].strip()
                if call_id not in seen:
                    seen.add(call_id)
                    uris.append(uri)
                uri = ""
        return uris
