"""Faults a test or the soak injects: between the controller and Asterisk, and on the SIP port.

`EventsProxy` sits between the controller and Asterisk's HTTP port (point ARI_URL at it) and can
drop the ARI events WebSocket on demand — closing it and refusing new ones for a while — while
REST requests keep passing: what a network blip or an overloaded HTTP server looks like. It can
also hold back the next `POST /channels/create` past the controller's request timeout, then
deliver it: a create that "timed out" yet made its channel, as an overloaded Asterisk does.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path


class EventsProxy:
    """A TCP proxy to Asterisk's HTTP port that can drop the ARI events WebSocket on demand
    and delay a channel create."""

    def __init__(self, port: int, upstream: tuple[str, int] = ("127.0.0.1", 8088)) -> None:
        self.upstream = upstream
        self.server = socket.create_server(("127.0.0.1", port), reuse_port=False)
        self.server.settimeout(0.2)
        self._lock = threading.Lock()
        self._events_conns: list[socket.socket] = []
        self._refuse_until = 0.0
        self._hold_create_s: float | None = None
        self.dropped = 0
        self.refused = 0
        self.held_creates = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def drop_events(self, gap_seconds: float) -> None:
        """Close every events WebSocket now and refuse new ones for `gap_seconds`."""
        with self._lock:
            self._refuse_until = time.monotonic() + gap_seconds
            conns, self._events_conns = self._events_conns, []
        for conn in conns:
            self.dropped += 1
            conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def hold_next_create(self, seconds: float) -> None:
        """Forward the next POST /channels/create to Asterisk only after `seconds`."""
        with self._lock:
            self._hold_create_s = seconds

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.server.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.upstream)
        except OSError:  # Asterisk is down (restarting): the client sees its connection refused
            client.close()
            return
        threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()
        # aiohttp may send the WebSocket upgrade over a kept-alive REST connection, so every
        # request is looked at, not only a connection's first bytes.
        try:
            while data := client.recv(65536):
                first_line = data.split(b"\r\n", 1)[0]
                if data.startswith(b"GET ") and b"/ari/events" in first_line:
                    with self._lock:
                        if time.monotonic() < self._refuse_until:
                            self.refused += 1
                            break
                        self._events_conns.append(client)
                elif data.startswith(b"POST ") and b"/channels/create" in first_line:
                    with self._lock:
                        hold, self._hold_create_s = self._hold_create_s, None
                    if hold is not None:
                        self.held_creates += 1
                        time.sleep(hold)  # the controller gives up meanwhile and closes its end
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            for s in (client, upstream):
                try:
                    s.close()
                except OSError:
                    pass

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass


# sipvicious 0.3.8's svwar and svcrack accept -b/--bindingip but never hand it to their scanner
# (only svmap does): they bind every interface and, talking to 127.0.0.1, send FROM 127.0.0.1 --
# the carrier's address in the lab, so Asterisk would treat the scanner as the carrier. Each tool
# therefore runs with socket binds to "any" pinned to the stranger's address.
_PIN_BIND = """
import socket, sys
_bind = socket.socket.bind
def bind(self, address):
    if address[0] in ("", "0.0.0.0"):
        address = ({source!r}, *address[1:])
    return _bind(self, address)
socket.socket.bind = bind
from sipvicious.{tool} import main
sys.argv = ["sipvicious_{tool}", *sys.argv[1:]]
sys.exit(main())
"""


def sipvicious(
    tool: str, *args: str, home: Path, source: str = "127.0.0.2", timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    """Run a sipvicious tool (svmap, svwar, svcrack) from `source`, a loopback address no
    endpoint identifies: what a scanner on the Internet is to a production hotline."""
    return subprocess.run(
        [sys.executable, "-c", _PIN_BIND.format(tool=tool, source=source), "-b", source, *args],
        cwd=home,
        env={**os.environ, "HOME": str(home)},  # its session files: ~/.sipvicious
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
