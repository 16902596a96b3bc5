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

A controller killed mid-call loses nothing recorded: beside each raw stream it plans, it leaves
`<name>.plan` (call id, party, start), and MixMonitor touches `<name>.raw.closed` once it has
closed the file (the dialplan's post-command). The next controller finishes every plan it finds
that it did not make itself (`finish_leftovers`): a closed raw file becomes its WAV and row like
any other; one still open belongs to a leg still talking and is waited for; one Asterisk never
closed because Asterisk itself died (older than Asterisk's start) is finished as it is.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import os
import shutil
import struct
import time
from collections.abc import Awaitable, Callable, Mapping
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
CLOSED = ".closed"  # MixMonitor's post-command touches <raw>.closed once the file is complete (dialplan)
CLOSED_WAIT_SECONDS = 2.0  # a settled file's closed marker is waited for this long (then it is finished anyway)
LEFTOVER_POLL_SECONDS = 2.0  # how often a leftover still being recorded is looked at again


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

    @property
    def plan_file(self) -> Path:
        return self.raw.with_suffix(".plan")

    @property
    def closed_marker(self) -> Path:
        return self.raw.with_name(self.raw.name + CLOSED)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "call_id": self.call_id,
            "party": self.party,
            "asterisk_path": self.asterisk_path,
            "started_at": self.started_at,
        }

    @classmethod
    def from_plan_file(cls, plan: Path) -> Planned:
        """What a (dead) controller wrote beside the raw stream it planned."""
        data = json.loads(plan.read_text(encoding="utf-8"))
        raw = plan.with_suffix(".raw")
        return cls(
            name=str(data["name"]),
            call_id=str(data["call_id"]),
            party=str(data["party"]),
            asterisk_path=str(data["asterisk_path"]),
            raw=raw,
            wav=raw.with_suffix(".wav"),
            started_at=float(data["started_at"]),
        )


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
        self._mine: set[str] = set()  # legs this controller planned and finishes itself

    def plan(self, policy: RecordingPolicy, call_id: str, leg: int, party: str) -> Planned | None:
        """The leg's paths, its day directory made; None (counted, logged) when it cannot be recorded."""
        day = self.clock().date().isoformat()
        base = host_path(self.root, policy.directory)
        where = base / day
        name = f"{call_id}-{leg}"
        try:
            if not base.exists():  # Asterisk writes into it: owned like the spool it is made in
                make_private_dir(base, owner_of=base.parent)
            make_private_dir(where, owner_of=base)
            if not os.access(where, os.W_OK):
                raise PermissionError(f"{where} is not writable")
            if shutil.disk_usage(where).free < self.min_free_bytes:
                self.failed("disk_full", name, free=shutil.disk_usage(where).free)
                return None
            planned = Planned(
                name=name,
                call_id=call_id,
                party=party,
                asterisk_path=f"{policy.directory}/{day}/{name}.raw",
                raw=where / f"{name}.raw",
                wav=where / f"{name}.wav",
                started_at=time.time(),
            )
            # For the next controller, should this one die before the leg ends (finish_leftovers).
            fd = os.open(planned.plan_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(planned.to_json(), f, ensure_ascii=False)
        except OSError as exc:
            self.failed("unwritable", name, error=exc.strerror or str(exc))
            return None
        self._mine.add(name)
        return planned

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
        try:
            if not await _settled(planned.raw):
                self.failed("not_written", planned.name)
                return
            await _appears(planned.closed_marker, CLOSED_WAIT_SECONDS)  # MixMonitor says it is done
            await self._keep(planned, self._convert)
        finally:
            self._mine.discard(planned.name)
            _forget(planned)

    async def _keep(self, planned: Planned, make: Callable[[Planned], RecordingKept | None]) -> None:
        try:
            kept = await asyncio.to_thread(make, planned)
        except (OSError, ValueError) as exc:
            self.failed("unreadable", planned.name, error=str(exc))
            return
        if kept is None:
            self.failed("empty", planned.name)
            return
        self.calllog.record(kept)
        self.counter.recording_kept("call", kept.seconds)
        log.info("recording_kept", recording=kept.name, seconds=kept.seconds, bytes=kept.bytes)

    # -- what a dead controller left ---------------------------------------------------------------
    def leftovers(self, directory: str) -> list[Path]:
        """Plan files under the recording tree of legs this controller did not plan."""
        base = host_path(self.root, directory)
        return sorted(p for p in base.glob("*/*.plan") if p.stem not in self._mine)

    async def finish_leftovers(
        self,
        directory: str,
        asterisk_started: Callable[[], Awaitable[float | None]],
        poll: float = LEFTOVER_POLL_SECONDS,
    ) -> None:
        """Finish the recordings a previous controller planned and never finished (it was killed).

        A raw file MixMonitor has closed is finished now; one still open is a leg still talking
        (the call was adopted or is ending) and is looked at again every `poll` s until it closes;
        one never closed and last written before Asterisk started belongs to an Asterisk that died
        and is finished as it is. A plan whose WAV is there already lost only its row: it is hashed.
        """
        pending = await asyncio.to_thread(self.leftovers, directory)
        if pending:
            log.info("recording_leftovers", count=len(pending))
        started: float | None = None
        while pending:
            for plan in list(pending):
                try:
                    planned = Planned.from_plan_file(plan)
                except (OSError, ValueError, KeyError) as exc:
                    log.warning("recording_plan_unreadable", plan=str(plan), error=str(exc))
                    pending.remove(plan)
                    continue
                if _size(planned.raw) >= 0 and not planned.closed_marker.exists():
                    if started is None:
                        started = await asterisk_started()
                    if started is None or _mtime(planned.raw) >= started:
                        continue  # still being recorded
                pending.remove(plan)
                if _size(planned.raw) >= 0:
                    await self._keep(planned, self._convert)
                elif planned.wav.exists():
                    await self._keep(planned, _rehash)
                else:
                    self.failed("not_written", planned.name)
                _forget(planned)
                log.info("recording_leftover_finished", recording=planned.name)
            if pending:
                await asyncio.sleep(poll)

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
        return _kept(planned, round(len(data) / (SAMPLE_RATE * CHANNELS * SAMPLE_BYTES), 3))

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


def _kept(planned: Planned, seconds: float) -> RecordingKept:
    """The row of a leg's finished WAV: its size and checksum read from the file."""
    return RecordingKept(
        name=planned.name,
        call_id=planned.call_id,
        what="call",
        party=planned.party,
        path=str(planned.wav),
        started_at=planned.started_at,
        seconds=seconds,
        bytes=planned.wav.stat().st_size,
        sha256=sha256_of(planned.wav),
    )


def _rehash(planned: Planned) -> RecordingKept:
    """A WAV finished by a controller that died before its row was written."""
    return _kept(planned, wav_seconds(planned.wav))


def _forget(planned: Planned) -> None:
    """The leg's plan and MixMonitor's marker: done with (its row is on its way to the call log)."""
    for path in (planned.plan_file, planned.closed_marker):
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("recording_plan_not_removed", path=str(path), error=exc.strerror)


async def _appears(path: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not _exists(path):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def _exists(path: Path) -> bool:
    return path.exists()


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


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
