"""A private PostgreSQL server for tests: initdb into a temporary directory, start, stop, gone.

Debian's `postgresql` package (hotlinectl's HOST_PACKAGES) provides the binaries; no system
service is used or started. PostgreSQL refuses to run as root, as CI runs, so the server runs
as the `postgres` system user on a directory it owns. It listens on a unix socket in that
directory and on 127.0.0.1 at a free port: the socket with `trust` (the harness's admin
connection), TCP with a password (so URLs in the tests carry one, as a deployment's would).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

PASSWORD = "pg-test-secret-5f1c"  # the test role's password: tests check it never reaches a log
USER = "hotline"


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError("PostgreSQL is not installed (Debian package `postgresql`, in hotlinectl's HOST_PACKAGES)")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One throwaway cluster: `start()`, `database()` per test, `stop()`/`start()` for outages, `destroy()`."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.dir = Path(tempfile.mkdtemp(prefix="hotline-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self._as_root = os.geteuid() == 0
        self._databases = 0
        if self._as_root:
            shutil.chown(self.dir, "postgres", "postgres")
        pwfile = self.dir / "pw"
        pwfile.write_text(PASSWORD)
        if self._as_root:
            shutil.chown(pwfile, "postgres", "postgres")
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            USER,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        pwfile.unlink()

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin / tool), *args]
        if self._as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd="/", timeout=120)
        if check and done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
        return done

    @property
    def running(self) -> bool:
        if not self.data.is_dir():
            return False
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def start(self) -> None:
        # fsync off: the tests stop and kill the server, never the machine, and it keeps them fast.
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c full_page_writes=off -c max_connections=60"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.dir / "server.log"), "-w", "-t", "60", "-o", options, "start"
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: `fast` (clean), or `immediate` (as if it crashed: no shutdown checkpoint)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def destroy(self) -> None:
        try:
            if self.running:
                self.stop("fast")
        finally:
            if self.running:
                self.stop("immediate")
            shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, dbname: str = "postgres", *, tcp: bool = True) -> str:
        """The database's URL: over TCP with the password, or over the unix socket."""
        if tcp:
            return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{dbname}"
        return f"postgresql://{USER}@/{dbname}?host={self.dir}&port={self.port}"

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.url(tcp=False), autocommit=True)

    def database(self) -> str:
        """A new empty database; its URL (TCP, with the password)."""
        self._databases += 1
        name = f"calllog_{os.getpid()}_{self._databases}"
        with self.admin() as db:
            db.execute(f"CREATE DATABASE {name}")
        return self.url(name)


@contextmanager
def running_server() -> Iterator[PostgresServer]:
    """A started PostgresServer, destroyed (stopped, files gone) however the block ends."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.destroy()
