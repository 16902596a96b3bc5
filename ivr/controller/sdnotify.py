"""systemd's notify protocol (sd_notify(3)), spoken directly: one datagram per state change.

Under `Type=notify` systemd hands the service NOTIFY_SOCKET (a Unix datagram socket's path, or an
abstract name written with a leading `@`) and, with `WatchdogSec=`, WATCHDOG_USEC. We send READY=1
once the controller is up, then WATCHDOG=1 at half the watchdog interval -- from a task on the
event loop, so the keep-alives stop exactly when the loop stops turning (a blocking call, a
deadlock) and systemd kills and restarts us. STOPPING=1 says a drain has begun.

Outside systemd (no NOTIFY_SOCKET) every call is a no-op. No libsystemd binding: the protocol is
a sendto() and this keeps the controller free of a C dependency.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Mapping

import structlog

log = structlog.get_logger("ivr.controller.sdnotify")


class Notifier:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        path = env.get("NOTIFY_SOCKET", "")
        self.address = "\0" + path[1:] if path.startswith("@") else path
        self.watchdog_interval: float | None = None
        usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
        # WATCHDOG_PID names the process meant; a child that inherited the variables is not it.
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_interval = int(usec) / 2 / 1_000_000
        self._socket: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def notify(self, message: str) -> None:
        if not self.address:
            return
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.sendto(message.encode(), self.address)
        except OSError as exc:  # systemd gone or the socket full: nothing to do but say so
            log.warning("sd_notify_failed", message=message, error=str(exc))

    async def run(self) -> None:
        """READY=1, then (with a watchdog) WATCHDOG=1 for as long as the event loop turns."""
        self.notify("READY=1")
        if self.watchdog_interval is None:
            return
        log.info("systemd_watchdog", interval_seconds=self.watchdog_interval)
        while True:
            self.notify("WATCHDOG=1")
            await asyncio.sleep(self.watchdog_interval)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
