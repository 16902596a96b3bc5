"""Recordings and messages found, exported (and the export logged), marked handled, purged with their files."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from click.testing import CliRunner

from ivr.calllog import open_calllog
from ivr.calllog.records import CallRecord
from ivr.cli import main
from ivr.recording.store import RecordingKept

DAY = 86400.0


def recorded(tmp_path: Path, age_days: float = 0.0) -> tuple[str, Path, Path]:
    """A call log with one finished call of 市公安局 and its recording, and a message; (log, wav, msg)."""
    path = tmp_path / "calllog.sqlite3"
    log = open_calllog(path)
    log.start()
    started = time.time() - age_days * DAY
    for call_id, unit in (("c1", "市公安局"), ("c2", "市人社局")):
        record = CallRecord(
            call_id=call_id,
            channel_id=f"chan-{call_id}",
            entry="12345",
            caller_masked="139****5678",
            caller_hash=f"hash-{call_id}",
            routes_version="v",
        )
        record.started_at = started
        record.unit = unit
        log.call_started(record)
    files = []
    for name, call_id, what in (("c1-1", "c1", "call"), ("hotline-msg-c2", "c2", "message")):
        wav = tmp_path / f"{name}.wav"
        wav.write_bytes(b"RIFF" + bytes(100))
        files.append(wav)
        sha = hashlib.sha256(wav.read_bytes()).hexdigest()
        log.record(RecordingKept(name, call_id, what, "", str(wav), started, 1.0, 104, sha))
    log.close()
    return str(path), files[0], files[1]


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_recordings_are_listed_by_unit_with_masked_numbers(tmp_path: Path) -> None:
    calllog, wav, _ = recorded(tmp_path)
    code, out, _ = run("recordings", "list", "--unit", "市公安局", "--json", "--calllog", calllog)
    assert code == 0
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert (row["name"], row["unit"], row["caller_masked"], row["path"]) == (
        "c1-1",
        "市公安局",
        "139****5678",
        str(wav),
    )
    code, out, err = run("recordings", "list", "--unit", "市人社局", "--calllog", calllog)
    assert (code, out) == (0, "") and "no recordings" in err


def test_an_export_is_logged_with_who_and_why_and_the_copy_checked(tmp_path: Path) -> None:
    calllog, wav, _ = recorded(tmp_path)
    dest = tmp_path / "out"
    code, out, _ = run(
        "recordings", "export", "c1-1", "--to", str(dest), "--by", "张三", "--reason", "投诉复核", "--calllog", calllog
    )
    assert code == 0, out
    assert (dest / wav.name).read_bytes() == wav.read_bytes() and (dest / wav.name).stat().st_mode & 0o777 == 0o600
    code, out, _ = run("recordings", "show", "c1-1", "--calllog", calllog)
    shown = json.loads(out)
    assert shown["file"] == "ok"
    assert [(e["who"], e["reason"]) for e in shown["exports"]] == [("张三", "投诉复核")]
    wav.write_bytes(b"tampered")
    code, _, err = run(
        "recordings", "export", "c1-1", "--to", str(dest), "--by", "x", "--reason", "y", "--calllog", calllog
    )
    assert code == 2 and "checksum mismatch" in err


def test_a_message_is_listed_until_handled(tmp_path: Path) -> None:
    calllog, _, _ = recorded(tmp_path)
    code, out, _ = run("messages", "list", "--calllog", calllog)
    assert code == 0 and out.startswith("hotline-msg-c2") and out.rstrip().endswith("open")
    assert run("messages", "handled", "hotline-msg-c2", "--by", "李四", "--calllog", calllog)[0] == 0
    assert run("messages", "list", "--calllog", calllog)[1] == ""
    assert "handled by 李四" in run("messages", "list", "--all", "--calllog", calllog)[1]
    assert run("messages", "handled", "nope", "--by", "x", "--calllog", calllog)[0] == 1


def test_purge_removes_old_recordings_and_messages_rows_and_files(tmp_path: Path) -> None:
    calllog, wav, msg = recorded(tmp_path, age_days=100)
    code, out, _ = run(
        "purge", "--keep-recordings-days", "180", "--keep-messages-days", "90", "--routes", "none", "--calllog", calllog
    )
    assert code == 0
    counts = json.loads(out)
    assert (counts["recordings_deleted"], counts["recording_files_deleted"]) == (1, 1)
    assert wav.exists() and not msg.exists()
    code, out, _ = run("purge", "--keep-recordings-days", "90", "--keep-messages-days", "90", "--calllog", calllog)
    assert json.loads(out)["recording_files_deleted"] == 1 and not wav.exists()
    assert open_calllog(calllog).recordings() == []
