"""Recording files: where a call's legs are recorded, and how a finished file is made a WAV, hashed and logged.

Mechanism (chosen by what survives a controller restart, see README "Recording"): Asterisk's
MixMonitor on the answered leg, started by the dialplan context `hotline-record` (ARI has no
verb for it: the controller sends the leg there and it comes straight back into Stasis). The
audiohook lives on the channel, not in the controller or a bridge, so it records to the leg's
end whatever happens to the controller. With option D it writes a raw two-channel stream
(16-bit, 8 kHz: the trunks are G.711) — channel 1 the leg's own audio (the other side),
channel 2 what the leg hears (the citizen). Once the leg is gone the controller turns it into
`<call_id>-<leg>.wav` with channel 1 the citizen and channel 2 the other side, 0600 in a 0700
day directory, and writes its SHA-256, length and size to the call log (`recordings`).

Paths in routes.yaml are Asterisk's; Asterisk may run in a root of its own (the lab's chroot),
so the controller reaches them under `asterisk_root` (HOTLINE_ASTERISK_ROOT, or what
`hotlinectl start-asterisk` left in STATE/asterisk-root, else "/").

Whatever fails here — a directory that cannot be made, a full disk, a file Asterisk could not
write — the call goes on unrecorded; each failure is counted
(`hotline_recording_failures_total{reason}`) and logged, and the alert fires.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import shutil
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import structlog

from ivr.calllog.commands import Db
from ivr.recording.policy import RecordingPolicy

log = structlog.get_logger("ivr.recording")

SAMPLE_RATE = 8000
CHANNELS = 2
SAMPLE_BYTES = 2
MIN_FREE_BYTES = 64 * 1024 * 1024  # below this a new recording is not started: the disk counts as full
SETTLE_SECONDS = 0.4  # a file whose size has not changed this long after its leg ended is finished
WAIT_FOR_FILE_SECONDS = 5.0  # a file not there this long after its leg ended was never written
MESSAGES_DIR = "/var/spool/asterisk/recording"  # where ARI keeps recorded messages (Asterisk's view)


class RecordingWrites(Protocol):
    def record(self, write: Any) -> None: ...


class FailureCounter(Protocol):
    def recording_failed(self, reason: str) -> None: ...

    def recording_kept(self, kind: str, seconds: float) -> None: ...


@dataclass(frozen=True)
class RecordingKept:
    """A finished file's row in `recordings` (journaled like every call-log write)."""

    name: str
    call_id: str
    what: str  # call | message (the column `kind`)
    party: str
    path: str
    started_at: float
    seconds: float
    bytes: int
    sha256: str
    kind: ClassVar[str] = "recording_kept"

    def apply(self, db: Db) -> None:
        db.execute(
            "INSERT INTO recordings (name, call_id, kind, party, path, started_at, seconds, bytes, sha256)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET path = excluded.path,"
            " seconds = excluded.seconds, bytes = excluded.bytes, sha256 = excluded.sha256",
            (
                self.name,
                self.call_id,
                self.what,
                self.party,
                self.path,
                self.started_at,
                self.seconds,
                self.bytes,
                self.sha256,
            ),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "call_id": self.call_id,
            "what": self.what,
            "party": self.party,
            "path": self.path,
            "started_at": self.started_at,
            "seconds": self.seconds,
            "bytes": self.bytes,
            "sha256": self.sha256,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RecordingKept:
        return cls(
            data["name"],
            data["call_id"],
            data["what"],
            data["party"],
            data["path"],
            float(data["started_at"]),
            float(data["seconds"]),
            int(data["bytes"]),
            data["sha256"],
        )


@dataclass(frozen=True)
class Planned:
    """A leg about to be recorded: where Asterisk writes, where the controller finds it."""

    name: str
    call_id: str
    party: str
    asterisk_path: str  # the raw stream, as Asterisk sees it (HOTLINE_RECORDING)
    raw: Path  # the same file from here
    wav: Path
    started_at: float


def asterisk_root(env: Mapping[str, str], state: Path) -> Path:
    """Where Asterisk's filesystem is from here: HOTLINE_ASTERISK_ROOT, the lab's STATE/asterisk-root, or /."""
    if env.get("HOTLINE_ASTERISK_ROOT"):
        return Path(env["HOTLINE_ASTERISK_ROOT"])
    try:
        return Path((state / "asterisk-root").read_text(encoding="utf-8").strip() or "/")
    except OSError:
        return Path("/")


def host_path(root: Path, asterisk_path: str) -> Path:
    return root / asterisk_path.lstrip("/")


def wav_header(data_bytes: int, channels: int = CHANNELS, rate: int = SAMPLE_RATE) -> bytes:
    block = channels * SAMPLE_BYTES
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * block, block, SAMPLE_BYTES * 8)
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def citizen_first(raw: bytes) -> bytes:
    """MixMonitor's frames are (other side, citizen); the WAV's are (citizen, other side)."""
    frames = len(raw) // 4 * 4
    out = bytearray(frames)
    out[0::4], out[1::4] = raw[2:frames:4], raw[3:frames:4]
    out[2::4], out[3::4] = raw[0:frames:4], raw[1:frames:4]
    return bytes(out)


def wav_seconds(path: Path) -> float:
    """Length of a PCM WAV from its header (fmt and data chunks)."""
    with path.open("rb") as f:
        head = f.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise ValueError(f"{path.name} is not a WAV file")
        rate = block = 0
        while chunk := f.read(8):
            name, size = chunk[:4], struct.unpack("<I", chunk[4:8])[0]
            if name == b"fmt ":
                fmt = f.read(size)
                _, _, rate, _, block = struct.unpack("<HHIIH", fmt[:14])
                continue
            if name == b"data":
                if not rate or not block:
                    break
                real = min(size, path.stat().st_size - f.tell())
                return round(real / (rate * block), 3)
            f.seek(size, os.SEEK_CUR)
    raise ValueError(f"{path.name} has no fmt/data chunks")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def make_private_dir(path: Path, owner_of: Path | None = None) -> None:
    """0700 directories down to `path`, owned like `owner_of` (Asterisk's user writes into them)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    if owner_of is not None and owner_of.exists() and os.geteuid() == 0:
        st = owner_of.stat()
        os.chown(path, st.st_uid, st.st_gid)


class Recorder:
    """Plans each answered leg's recording and finishes it in the background once the leg is gone."""

    def __init__(
        self,
        root: Path,
        calllog: RecordingWrites,
        counter: FailureCounter,
        clock: Callable[[], dt.datetime],
        min_free_bytes: int = MIN_FREE_BYTES,
    ) -> None:
        self.root = root
        self.calllog = calllog
        self.counter = counter
        self.clock = clock
        self.min_free_bytes = min_free_bytes
        self._tasks: set[asyncio.Task[None]] = set()

    def plan(self, policy: RecordingPolicy, call_id: str, leg: int, party: str) -> Planned | None:
        """The leg's paths, its day directory made; None (counted, logged) when it cannot be recorded."""
        day = self.clock().date().isoformat()
        base = host_path(self.root, policy.directory)
        where = base / day
        name = f"{call_id}-{leg}"
        try:
            if not base.exists():
                make_private_dir(base)
            make_private_dir(where, owner_of=base)
            if not os.access(where, os.W_OK):
                raise PermissionError(f"{where} is not writable")
            if shutil.disk_usage(where).free < self.min_free_bytes:
                self.failed("disk_full", name, free=shutil.disk_usage(where).free)
                return None
        except OSError as exc:
            self.failed("unwritable", name, error=exc.strerror or str(exc))
            return None
        return Planned(
            name=name,
            call_id=call_id,
            party=party,
            asterisk_path=f"{policy.directory}/{day}/{name}.raw",
            raw=where / f"{name}.raw",
            wav=where / f"{name}.wav",
            started_at=time.time(),
        )

    def failed(self, reason: str, name: str, **detail: Any) -> None:
        self.counter.recording_failed(reason)
        log.warning("recording_failed", reason=reason, recording=name, **detail)

    def finish(self, planned: Planned) -> None:
        """The leg has ended: make its WAV and row without holding up the call's end."""
        self._spawn(self._finish(planned))

    def message_kept(self, call_id: str, name: str, party: str = "") -> None:
        """A message (留言) was kept by ARI's recording: hash it and list it."""
        self._spawn(self._finish_message(call_id, name, party, time.time()))

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait for recordings being finished (the controller stopping)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finish(self, planned: Planned) -> None:
        if not await _settled(planned.raw):
            self.failed("not_written", planned.name)
            return
        try:
            kept = await asyncio.to_thread(self._convert, planned)
        except (OSError, ValueError) as exc:
            self.failed("unreadable", planned.name, error=str(exc))
            return
        if kept is None:
            self.failed("empty", planned.name)
            return
        self.calllog.record(kept)
        self.counter.recording_kept("call", kept.seconds)
        log.info("recording_kept", recording=kept.name, seconds=kept.seconds, bytes=kept.bytes)

    def _convert(self, planned: Planned) -> RecordingKept | None:
        raw = planned.raw.read_bytes()
        if len(raw) < 4:
            planned.raw.unlink(missing_ok=True)
            return None
        data = citizen_first(raw)
        part = planned.wav.with_suffix(".part")
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(wav_header(len(data)))
            f.write(data)
        st = planned.raw.stat()
        if os.geteuid() == 0:
            os.chown(part, st.st_uid, st.st_gid)
        part.chmod(0o600)
        part.replace(planned.wav)
        planned.raw.unlink()
        return RecordingKept(
            name=planned.name,
            call_id=planned.call_id,
            what="call",
            party=planned.party,
            path=str(planned.wav),
            started_at=planned.started_at,
            seconds=round(len(data) / (SAMPLE_RATE * CHANNELS * SAMPLE_BYTES), 3),
            bytes=planned.wav.stat().st_size,
            sha256=sha256_of(planned.wav),
        )

    async def _finish_message(self, call_id: str, name: str, party: str, at: float) -> None:
        path = host_path(self.root, f"{MESSAGES_DIR}/{name}.wav")
        if not await _settled(path):
            self.failed("not_written", name)
            return
        try:

            def hashed() -> RecordingKept:
                path.chmod(0o600)
                return RecordingKept(
                    name,
                    call_id,
                    "message",
                    party,
                    str(path),
                    at,
                    wav_seconds(path),
                    path.stat().st_size,
                    sha256_of(path),
                )

            kept = await asyncio.to_thread(hashed)
        except (OSError, ValueError) as exc:
            self.failed("unreadable", name, error=str(exc))
            return
        self.calllog.record(kept)
        self.counter.recording_kept("message", kept.seconds)


async def _settled(path: Path) -> bool:
    """True once `path` exists and its size has stopped changing (its writer has closed it)."""
    deadline = time.monotonic() + WAIT_FOR_FILE_SECONDS
    last = -1
    while True:
        size = _size(path)
        if size >= 0 and size == last:
            return True
        if size < 0 and time.monotonic() > deadline:
            return False
        last = size
        await asyncio.sleep(SETTLE_SECONDS)


def _size(path: Path) -> int:
    """The file's size, -1 if it is not there (a stat: quick enough for the loop between polls)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1
