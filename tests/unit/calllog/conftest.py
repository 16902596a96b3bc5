"""The call log's test storage: both backends, and real faults for them.

- `backend` runs a test once on an SQLite file and once on a PostgreSQL database; `target` is
  that file's path or that database's URL (a new empty one per test), for `open_calllog`.
- `pg_server` is one private PostgreSQL server for the session (tests/pg.py): initdb'd into a
  temporary directory, started, and stopped and removed at the end; nothing is left running.
- `tmpfs`: small tmpfs disks that fill up or turn read-only. Mounting needs root, as CI runs;
  without it these tests fail (they must not pass by skipping).
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.pg import PostgresServer, running_server


class Disk:
    """A tmpfs mounted for one test: fill it, free it, turn it read-only and back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / "filler"

    def fill(self) -> None:
        """Take every free byte (big chunks, then small ones) until the disk says ENOSPC."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (1 << 16, 1 << 12, 1 << 9, 1):
                data = b"\0" * size
                while True:
                    try:
                        os.write(fd, data)
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
        finally:
            os.close(fd)

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def read_only(self) -> None:
        _mount("-o", "remount,ro", str(self.path))

    def writable(self) -> None:
        _mount("-o", "remount,rw", str(self.path))


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"mount {' '.join(args)} failed (these tests need root, as CI runs them): {done.stderr.strip()}")


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Disk]]:
    mounted: list[Path] = []

    def mount(name: str = "disk", size: str = "2m") -> Disk:
        path = tmp_path / name
        path.mkdir()
        _mount("-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path))
        mounted.append(path)
        return Disk(path)

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)
        if os.path.ismount(path):
            pytest.fail(f"could not unmount {path}")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    with running_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def target(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Where the test's call log is: an SQLite path (var/calllog.sqlite3) or a new database's URL."""
    if backend == "sqlite":
        return str(tmp_path / "var" / "calllog.sqlite3")
    server: PostgresServer = request.getfixturevalue("pg_server")
    return server.database()
