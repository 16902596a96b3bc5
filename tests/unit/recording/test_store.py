"""Finishing a leg's recording: MixMonitor's raw stream becomes a private two-channel WAV with its row."""

from __future__ import annotations

import array
import asyncio
import datetime as dt
import hashlib
import wave
from pathlib import Path
from typing import Any

import pytest

from ivr.calllog.commands import decode, encode
from ivr.recording import store
from ivr.recording.policy import RecordingPolicy
from ivr.recording.store import Recorder, RecordingKept, citizen_first, wav_header, wav_seconds

POLICY = RecordingPolicy(record=True, directory="/spool/calls")
DAY = dt.datetime(2026, 11, 24, 10, 0)


class Book:
    """The call log's writes and the metrics, as the recorder sees them."""

    def __init__(self) -> None:
        self.writes: list[Any] = []
        self.failures: list[str] = []
        self.kept: list[tuple[str, float]] = []

    def record(self, write: Any) -> None:
        self.writes.append(write)

    def recording_failed(self, reason: str) -> None:
        self.failures.append(reason)

    def recording_kept(self, kind: str, seconds: float) -> None:
        self.kept.append((kind, seconds))


def recorder(tmp_path: Path, book: Book, **options: Any) -> Recorder:
    return Recorder(tmp_path, book, book, lambda: DAY, **options)


def frames(*pairs: tuple[int, int]) -> bytes:
    return array.array("h", [s for pair in pairs for s in pair]).tobytes()


def test_the_citizen_becomes_channel_one() -> None:
    # MixMonitor on the answered leg writes (what the leg says, what it hears) = (other side, citizen).
    assert citizen_first(frames((1, -2), (300, -400))) == frames((-2, 1), (-400, 300))


def test_a_header_says_the_length_the_data_has(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    path.write_bytes(wav_header(32000) + bytes(32000))
    assert wav_seconds(path) == 1.0
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getnframes()) == (2, 8000, 8000)


def test_a_leg_is_planned_in_a_private_day_directory_named_by_call_id(tmp_path: Path) -> None:
    planned = recorder(tmp_path, Book()).plan(POLICY, "a1b2c3", 2, "市公安局")
    assert planned is not None
    assert planned.asterisk_path == "/spool/calls/2026-11-24/a1b2c3-2.raw"
    assert planned.raw == tmp_path / "spool/calls/2026-11-24/a1b2c3-2.raw"
    assert (tmp_path / "spool/calls").stat().st_mode & 0o777 == 0o700
    assert planned.raw.parent.stat().st_mode & 0o777 == 0o700


def test_a_full_disk_or_an_unwritable_tree_means_no_recording_and_a_count(tmp_path: Path) -> None:
    book = Book()
    assert recorder(tmp_path / "a", book, min_free_bytes=1 << 62).plan(POLICY, "a1", 1, "x") is None
    (tmp_path / "b").mkdir()
    (tmp_path / "b/spool").write_text("a file where the tree should be")
    assert recorder(tmp_path / "b", book).plan(POLICY, "a1", 1, "x") is None
    assert book.failures == ["disk_full", "unwritable"]


def test_a_finished_leg_becomes_a_wav_with_its_checksum_and_length(tmp_path: Path) -> None:
    book = Book()
    rec = recorder(tmp_path, book)
    planned = rec.plan(POLICY, "a1b2c3", 1, "市公安局")
    assert planned is not None
    planned.raw.write_bytes(frames(*[(100, -100)] * 12000))  # 1.5 s
    planned.closed_marker.touch()  # MixMonitor closed it

    async def finish() -> None:
        rec.finish(planned)
        await rec.drain()

    asyncio.run(finish())
    assert not planned.raw.exists() and planned.wav.stat().st_mode & 0o777 == 0o600
    (kept,) = book.writes
    assert (kept.name, kept.call_id, kept.what, kept.party, kept.seconds) == (
        "a1b2c3-1",
        "a1b2c3",
        "call",
        "市公安局",
        1.5,
    )
    assert kept.sha256 == hashlib.sha256(planned.wav.read_bytes()).hexdigest()
    assert kept.bytes == planned.wav.stat().st_size == 44 + 48000
    assert decode(encode(kept)) == kept  # journaled like every call-log write
    assert book.kept == [("call", 1.5)]
    with wave.open(str(planned.wav)) as w:
        assert array.array("h", w.readframes(1)).tolist() == [-100, 100]


def test_a_file_asterisk_never_wrote_is_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "WAIT_FOR_FILE_SECONDS", 0.2)
    monkeypatch.setattr(store, "SETTLE_SECONDS", 0.05)
    book = Book()
    rec = recorder(tmp_path, book)
    planned = rec.plan(POLICY, "a1", 1, "x")
    assert planned is not None

    async def finish() -> None:
        rec.finish(planned)
        await rec.drain()

    asyncio.run(finish())
    assert book.failures == ["not_written"] and book.writes == []


def test_a_kept_message_is_listed_with_its_checksum(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "SETTLE_SECONDS", 0.05)
    book = Book()
    rec = recorder(tmp_path, book)
    wav = tmp_path / "var/spool/asterisk/recording/hotline-msg-a1.wav"
    wav.parent.mkdir(parents=True)
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(2 * 8000 * 3))

    async def kept() -> None:
        rec.message_kept("a1", "hotline-msg-a1", "市公安局")
        await rec.drain()

    asyncio.run(kept())
    (row,) = book.writes
    assert isinstance(row, RecordingKept)
    assert (row.what, row.seconds, row.sha256) == ("message", 3.0, hashlib.sha256(wav.read_bytes()).hexdigest())
    assert wav.stat().st_mode & 0o777 == 0o600


def test_a_planned_leg_leaves_its_plan_for_the_next_controller_until_it_is_finished(tmp_path: Path) -> None:
    book = Book()
    rec = recorder(tmp_path, book)
    planned = rec.plan(POLICY, "a1b2c3", 1, "市公安局")
    assert planned is not None
    assert planned.plan_file.stat().st_mode & 0o777 == 0o600
    assert store.Planned.from_plan_file(planned.plan_file) == planned
    assert rec.leftovers(POLICY.directory) == []  # its own: finished by finish(), not as a leftover
    assert recorder(tmp_path, Book()).leftovers(POLICY.directory) == [planned.plan_file]
    planned.raw.write_bytes(frames((1, 2)))
    planned.closed_marker.touch()

    async def finish() -> None:
        rec.finish(planned)
        await rec.drain()

    asyncio.run(finish())
    assert not planned.plan_file.exists() and not planned.closed_marker.exists()
    assert [w.name for w in book.writes] == ["a1b2c3-1"]


def leftover(tmp_path: Path, call_id: str, raw: bytes | None, *, closed: bool) -> store.Planned:
    """A leg a (killed) controller planned: its plan file, and what Asterisk wrote of it."""
    planned = recorder(tmp_path, Book()).plan(POLICY, call_id, 1, "市公安局")
    assert planned is not None
    if raw is not None:
        planned.raw.write_bytes(raw)
    if closed:
        planned.closed_marker.touch()
    return planned


def test_the_next_controller_finishes_a_closed_leftover_and_waits_for_one_still_recording(tmp_path: Path) -> None:
    closed = leftover(tmp_path, "closed", frames(*[(100, -100)] * 8000), closed=True)
    talking = leftover(tmp_path, "talking", frames((5, 5)), closed=False)
    never = leftover(tmp_path, "never", None, closed=False)
    book = Book()
    rec = recorder(tmp_path, book)
    asterisk_started = 0.0  # long before the files: the open one is still being written

    async def started() -> float:
        return asterisk_started

    async def run() -> None:
        task = asyncio.create_task(rec.finish_leftovers(POLICY.directory, started, poll=0.01))
        await asyncio.sleep(0.2)
        assert not task.done()  # waiting for the leg still talking
        talking.raw.write_bytes(frames((5, 5), (6, 6)))
        talking.closed_marker.touch()  # the leg hung up: MixMonitor closed it
        await asyncio.wait_for(task, 5)

    asyncio.run(run())
    kept = {w.name: w for w in book.writes}
    assert set(kept) == {"closed-1", "talking-1"} and book.failures == ["not_written"]
    assert (kept["closed-1"].party, kept["closed-1"].seconds) == ("市公安局", 1.0)
    assert kept["closed-1"].sha256 == hashlib.sha256(closed.wav.read_bytes()).hexdigest()
    assert kept["talking-1"].started_at == talking.started_at
    for planned in (closed, talking, never):
        assert not planned.plan_file.exists() and not planned.raw.exists()


def test_a_leftover_asterisk_never_closed_because_it_died_is_finished_as_it_is(tmp_path: Path) -> None:
    cut = leftover(tmp_path, "cut", frames(*[(7, 7)] * 4000), closed=False)
    book = Book()

    async def started() -> float:
        return cut.raw.stat().st_mtime + 5  # Asterisk (re)started after the file was last written

    asyncio.run(recorder(tmp_path, book).finish_leftovers(POLICY.directory, started, poll=0.01))
    (kept,) = book.writes
    assert (kept.name, kept.seconds) == ("cut-1", 0.5) and cut.wav.exists()


def test_a_leftover_wav_whose_row_was_never_written_is_hashed(tmp_path: Path) -> None:
    planned = leftover(tmp_path, "norow", None, closed=True)
    planned.wav.write_bytes(wav_header(32000) + bytes(32000))
    book = Book()

    async def never() -> float:
        raise AssertionError("nothing is still open: Asterisk need not be asked")

    asyncio.run(recorder(tmp_path, book).finish_leftovers(POLICY.directory, never))
    (kept,) = book.writes
    assert (kept.name, kept.seconds, kept.sha256) == (
        "norow-1",
        1.0,
        hashlib.sha256(planned.wav.read_bytes()).hexdigest(),
    )
