"""The call log's durable journal: writes the database could not take, kept on disk in order.

One JSON object per line, appended and fsync'd per batch, so a record the database refused
(locked, read-only, full, gone) survives a kill of the controller as well as a clean stop.
The file holds full caller numbers (missed calls are on it), so it is created 0600 like the
database. Only the call log's writer thread touches it: no locking here.

A batch either lands whole or not at all: a failed append (disk full) cuts the file back to
where it was, so a batch is never half in the file and half in memory. A line torn by a kill
in the middle of an append has no newline; the next append starts on a fresh line and
reading skips the torn one (reported to the caller, which counts it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path

    def size(self) -> int:
        """Bytes in the file (0 when there is none)."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def count(self) -> int:
        """Writes in the file: its non-blank lines (a torn last line counts too). Raises OSError."""
        try:
            with self.path.open("rb") as f:
                return sum(1 for line in f if line.strip())
        except FileNotFoundError:
            return 0

    def append(self, entries: list[dict[str, Any]]) -> None:
        """Append one line per entry and fsync; all or nothing. Raises OSError."""
        data = "".join(json.dumps(e, ensure_ascii=False, separators=(",", ":")) + "\n" for e in entries).encode()
        created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            before = os.fstat(fd).st_size
            if before and os.pread(fd, 1, before - 1) != b"\n":
                data = b"\n" + data  # after a torn line: start a fresh one
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            except OSError:
                try:  # cutting back frees the space, so it works on a full disk too
                    os.ftruncate(fd, before)
                    os.fsync(fd)
                except OSError:
                    pass  # the torn tail is skipped on reading
                raise
        finally:
            os.close(fd)
        if created:
            _fsync_dir(self.path.parent)  # else a power cut could forget the file itself

    def read(self, offset: int, limit: int, until: int | None = None) -> tuple[list[dict[str, Any]], int, int]:
        """Up to `limit` entries from byte `offset` (not past byte `until`).

        Returns (entries, the offset after them, how many lines were unreadable and skipped).
        Raises OSError.
        """
        entries: list[dict[str, Any]] = []
        torn = 0
        try:
            f = self.path.open("rb")
        except FileNotFoundError:
            return entries, offset, torn
        with f:
            f.seek(offset)
            while len(entries) < limit and (until is None or offset < until):
                line = f.readline()
                if not line:
                    break
                offset += len(line)
                if not line.strip():
                    continue  # the fresh start after a torn line
                if not line.endswith(b"\n"):
                    torn += 1  # a kill during an append: that batch was never acknowledged
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    torn += 1
                    continue
                if isinstance(entry, dict):
                    entries.append(entry)
                else:
                    torn += 1
        return entries, offset, torn

    def clear(self) -> None:
        """Empty the file (kept, so its permissions stay). Raises OSError."""
        try:
            fd = os.open(self.path, os.O_WRONLY)
        except FileNotFoundError:
            return
        try:
            os.ftruncate(fd, 0)
            os.fsync(fd)
        finally:
            os.close(fd)

    def entries(self) -> Iterator[dict[str, Any]]:
        """Every readable entry (for status reports and tests)."""
        offset = 0
        while True:
            batch, offset, _ = self.read(offset, 1000)
            if not batch:
                return
            yield from batch


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
