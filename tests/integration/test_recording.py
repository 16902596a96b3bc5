"""全程录音 with real calls: SIPp citizen and SIPp phones that both speak, Asterisk's MixMonitor, the call log."""

from __future__ import annotations

import array
import datetime as dt
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
import wave
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ivr.timekeeping import LOCAL_TZ
from lab.citizen import place_call
from lab.sipp.speech import speaking
from tests.integration.conftest import (
    DEPARTMENTS_PORT,
    OPERATORS_PORT,
    REPO,
    SEAT_PORTS,
    STATE,
    Controller,
    Phone,
    until,
)

pytestmark = pytest.mark.integration

CITIZEN = "13912345678"
# The citizen picks 1 (市公安局), waits out the prompts, the ringing and a few seconds more, then speaks for 7 s.
SPEAKS_AFTER_BRIDGE = "1" + "," * 12 + "~"
TO_OPERATOR_AND_SPEAK = "0" + "," * 7 + "~"


def speaking_phone(tmp_path: Path) -> Path:
    """A phone that answers (lab/sipp/phone_answer.xml) and speaks the whole time it talks: SIPp's
    G.711 a-law speech sample, looped as an RTP stream. Media must flow on the leg the whole
    time, as a real phone's does: MixMonitor writes the audio that passes, and SIPp sends no RTP
    between samples."""
    return speaking(REPO / "lab/sipp/phone_answer.xml", tmp_path / "phone_speaks.xml", tmp_path / "speech.alaw")


def recording_routes(tmp_path: Path, *, units: str = "{}", directory: str = "") -> Path:
    """The shipped routes.yaml with recording switched on (and `units`, `directory` as given)."""
    text = (REPO / "routes.yaml").read_text(encoding="utf-8")
    for old, new in (
        ("  record: off ", "  record: on  "),
        ("  units: {}   ", f"  units: {units}   "),
        *((("  directory: /var/spool/asterisk/monitor/hotline ", f"  directory: {directory} "),) if directory else ()),
    ):
        assert old in text, old
        text = text.replace(old, new, 1)
    patched = tmp_path / "routes.yaml"
    patched.write_text(text, encoding="utf-8")
    return patched


def channel_levels(path: Path, start: float = 0.0, seconds: float = 3600.0) -> tuple[float, float]:
    """RMS of each channel of a 16-bit two-channel WAV from `start` for `seconds` (sox stat's RMS amplitude)."""
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 8000)
        w.setpos(min(w.getnframes(), int(start * 8000)))
        samples = array.array("h", w.readframes(int(seconds * 8000)))
    left, right = samples[0::2], samples[1::2]

    def rms(channel: array.array[int]) -> float:
        return (sum(s * s for s in channel) / max(1, len(channel))) ** 0.5 / 32768

    return rms(left), rms(right)


def kept(controller: Controller, n: int = 1, timeout: float = 20.0) -> list[dict[str, object]]:
    return list(
        until(
            lambda: (rows := controller.calllog.recordings("kind = 'call'")) and len(rows) >= n and rows,
            timeout=timeout,
            what=f"{n} recording(s) in the call log",
        )
    )


def test_a_department_call_is_recorded_in_two_channels_after_the_notice(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone], tmp_path: Path
) -> None:
    phones(DEPARTMENTS_PORT, scenario=speaking_phone(tmp_path), talk_ms=12000)
    controller = start_controller(recording_routes(tmp_path))

    call = place_call("12345", SPEAKS_AFTER_BRIDGE, caller=CITIZEN, talk_ms=40000)

    assert call.succeeded, call.stderr
    (row,) = controller.finished_calls()
    assert (row["unit"], row["outcome"], row["hangup_by"]) == ("市公安局", "connected", "callee")
    (rec,) = kept(controller)
    path = Path(str(rec["path"]))
    # Named by call id (never by number), 0600 in a 0700 day directory.
    assert path.name == f"{row['call_id']}-1.wav" and CITIZEN not in str(path)
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    assert (rec["call_id"], rec["party"]) == (row["call_id"], "市公安局")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == rec["sha256"]
    assert rec["bytes"] == path.stat().st_size
    with wave.open(str(path)) as w:
        seconds = w.getnframes() / w.getframerate()
    assert abs(seconds - float(str(rec["seconds"]))) < 0.01
    assert abs(seconds - row["talk_seconds"]) <= 0.5, (seconds, row["talk_seconds"])
    citizen, department = channel_levels(path)
    assert citizen > 0.005 and department > 0.005, (citizen, department)  # both parties audible
    # Channel 1 is the citizen: the department speaks as it answers, the citizen only seconds later.
    citizen, department = channel_levels(path, 0, 3)
    assert citizen < 0.001 < 0.005 < department, (citizen, department)
    # The citizen was told before anyone answered: the notice, then the ringing, then the recording.
    steps = [s["name"] for s in controller.calllog.steps(str(row["call_id"]))]
    assert steps.index("recording_notice") < steps.index("dial") < steps.index("recording")
    assert controller.saw("recording_kept", recording=f"{row['call_id']}-1")


def test_an_operator_call_is_recorded_and_a_unit_with_recording_off_is_not(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone], tmp_path: Path
) -> None:
    phones(SEAT_PORTS[0], scenario=speaking_phone(tmp_path), talk_ms=10000)
    phones(SEAT_PORTS[1], scenario=speaking_phone(tmp_path), talk_ms=10000)
    phones(DEPARTMENTS_PORT, scenario=speaking_phone(tmp_path), talk_ms=4000)
    controller = start_controller(recording_routes(tmp_path, units="{市公安局: off}"))

    to_operator = place_call("12345", TO_OPERATOR_AND_SPEAK, caller=CITIZEN, talk_ms=40000)
    unrecorded = place_call("12345", "1", caller="13800000001", talk_ms=40000)

    assert to_operator.succeeded and unrecorded.succeeded
    operator, department = controller.finished_calls(2)
    assert operator["outcome"] == "operator" and department["outcome"] == "connected"
    (rec,) = kept(controller)
    assert rec["call_id"] == operator["call_id"] and str(rec["party"]).startswith("seat-")
    path = Path(str(rec["path"]))
    with wave.open(str(path)) as w:
        seconds = w.getnframes() / w.getframerate()
    assert abs(seconds - operator["talk_seconds"]) <= 0.5, (seconds, operator["talk_seconds"])
    assert min(channel_levels(path)) > 0.005
    assert hashlib.sha256(path.read_bytes()).hexdigest() == rec["sha256"]
    # Recording off for the unit: no notice, no file, no row.
    steps = [s["name"] for s in controller.calllog.steps(str(department["call_id"]))]
    assert "recording_notice" not in steps and "recording" not in steps
    assert not list(path.parent.glob(f"{department['call_id']}*"))


def test_an_unwritable_recording_directory_leaves_the_call_working_and_is_counted(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone], tmp_path: Path
) -> None:
    root = Path((STATE / "asterisk-root").read_text().strip())
    # A directory of root's that Asterisk (its own user) cannot write into.
    locked = root / "var/spool/asterisk/monitor/locked"
    shutil.rmtree(locked, ignore_errors=True)
    locked.mkdir(mode=0o700, parents=True)
    phones(DEPARTMENTS_PORT, scenario=speaking_phone(tmp_path), talk_ms=8000)
    controller = start_controller(recording_routes(tmp_path, directory="/var/spool/asterisk/monitor/locked"))
    try:
        call = place_call("12345", "1", caller=CITIZEN, talk_ms=40000)

        assert call.succeeded, call.stderr
        (row,) = controller.finished_calls()
        assert row["outcome"] == "connected" and row["talk_seconds"] >= 7.5
        until(lambda: controller.saw("recording_failed", reason="not_written"), what="the failure to be logged")
        with urllib.request.urlopen("http://127.0.0.1:9345/metrics", timeout=5) as resp:
            metrics = resp.read().decode()
        assert 'hotline_recording_failures_total{reason="not_written"} 1.0' in metrics
        assert not controller.calllog.recordings()
    finally:
        shutil.rmtree(locked, ignore_errors=True)


def test_a_consult_transfer_records_the_department_leg_too(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone], tmp_path: Path
) -> None:
    from lab.sipp.seat import seat_scenario

    phones(DEPARTMENTS_PORT, scenario=speaking_phone(tmp_path), talk_ms=12000)  # MixMonitor keeps audio that passes
    phones(SEAT_PORTS[0], scenario=seat_scenario(tmp_path / "seat", [(3000, "*13372000#"), (5000, "*5#")], 60000))
    controller = start_controller(recording_routes(tmp_path))

    call = place_call("12345", TO_OPERATOR_AND_SPEAK, caller=CITIZEN, talk_ms=90000)

    assert call.succeeded, call.stderr
    (row,) = controller.finished_calls(1, timeout=30)
    recs = sorted(kept(controller, 2, timeout=30), key=lambda r: str(r["name"]))
    # The operator's leg, then the department's that the consult handed the citizen to.
    assert [(r["name"], r["party"]) for r in recs] == [
        (f"{row['call_id']}-1", "seat-1"),
        (f"{row['call_id']}-2", "市公安局"),
    ]
    for rec in recs:
        path = Path(str(rec["path"]))
        assert path.stat().st_size > 0 and hashlib.sha256(path.read_bytes()).hexdigest() == rec["sha256"]


@pytest.fixture
def own_directory() -> Iterator[Callable[[Path], str]]:
    """A recording directory of the test's own (Asterisk's path), removed after it: a controller
    finishes every leftover plan it finds in its directory, so no test sees another's."""
    made: list[Path] = []

    def make(tmp_path: Path) -> str:
        directory = f"/var/spool/asterisk/monitor/test-{tmp_path.name}"
        made.append(Path((STATE / "asterisk-root").read_text().strip()) / directory.lstrip("/"))
        return directory

    yield make
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


def hotline(*args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(REPO / ".venv/bin/hotline"), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_recorded_calls_are_sampled_with_a_seed_scored_into_the_report_and_purged_by_age(
    start_controller: Callable[..., Controller],
    phones: Callable[..., Phone],
    own_directory: Callable[[Path], str],
    tmp_path: Path,
) -> None:
    phones(DEPARTMENTS_PORT, scenario=speaking_phone(tmp_path), talk_ms=3000)
    controller = start_controller(recording_routes(tmp_path, directory=own_directory(tmp_path)))
    calllog = controller.env["HOTLINE_CALLLOG"]

    # Two recorded calls to 市公安局, the second starting once the first is being recorded.
    with ThreadPoolExecutor(2) as pool:
        older = pool.submit(place_call, "12345", "1", caller="13900000001", talk_ms=30000, local_port=5071)
        until(lambda: controller.saw("recording_started"), timeout=30, what="the first call to be recorded")
        younger = pool.submit(place_call, "12345", "1", caller="13900000002", talk_ms=30000, local_port=5072)
        assert older.result().succeeded and younger.result().succeeded
    first, second = sorted(kept(controller, 2, timeout=30), key=lambda r: float(str(r["started_at"])))

    # 录音抽检: the same seed draws the same sample (one per unit of two), and a score entered
    # through the CLI is in the report's QA section.
    today = str(dt.datetime.now(LOCAL_TZ).date())
    period = ["--from", today, "--to", today, "--calllog", calllog]
    draw = ["qa", "sample", *period, "--per-unit", "1", "--per-operator", "1", "--seed", "1912"]
    sample = [json.loads(line) for line in hotline(*draw).splitlines()]
    assert hotline(*draw).splitlines() == [json.dumps(s, ensure_ascii=False) for s in sample]
    (drawn,) = sample
    assert drawn["unit"] == "市公安局" and drawn["name"] in {first["name"], second["name"]}
    points = {"greeting": 8, "listening": 15, "accuracy": 25, "routing": 20, "courtesy": 9, "closing": 7}
    scores = [arg for k, v in points.items() for arg in ("-s", f"{k}={v}")]
    hotline("qa", "score", drawn["call_id"], *scores, "--by", "reviewer-1", "--sample", "1912", "--calllog", calllog)
    report = json.loads(hotline("report", *period, "--format", "json"))
    (qa,) = [q for q in report["qa"] if q["name"] == "市公安局"]
    assert (qa["group"], qa["recorded"], qa["scored"], qa["overall"]) == ("unit", 2, 1, 84)
    assert dict(qa["criteria"])["accuracy"] == 25

    # Retention: a day later by the clock, with one day's keep, the older recording (file and row)
    # goes and the younger stays.
    cutoff = (float(str(first["started_at"])) + float(str(second["started_at"]))) / 2
    a_day_later = dt.datetime.fromtimestamp(cutoff + 86400, LOCAL_TZ).replace(tzinfo=None).isoformat()
    purged = json.loads(
        hotline("purge", "--keep-recordings-days", "1", "--calllog", calllog, env={"HOTLINE_CLOCK_START": a_day_later})
    )
    assert (purged["recordings_deleted"], purged["recording_files_deleted"]) == (1, 1)
    assert not Path(str(first["path"])).exists()
    assert not list(Path(str(first["path"])).parent.glob(f"{first['name']}.*"))  # no raw, plan or marker left
    assert [r["name"] for r in controller.calllog.recordings("kind = 'call'")] == [second["name"]]
    assert hashlib.sha256(Path(str(second["path"])).read_bytes()).hexdigest() == second["sha256"]


def test_a_controller_killed_mid_call_loses_no_recording(
    start_controller: Callable[..., Controller],
    phones: Callable[..., Phone],
    own_directory: Callable[[Path], str],
    tmp_path: Path,
) -> None:
    """MixMonitor runs inside Asterisk: the leg goes on being recorded after the controller dies,
    and the next controller finishes the file it finds (its plan, MixMonitor's closed marker),
    with checksum and length in the call log."""
    phones(OPERATORS_PORT, talk_ms=1000)  # the duty line a stale caller may be released to
    phones(DEPARTMENTS_PORT, scenario=speaking_phone(tmp_path), talk_ms=12000)
    routes = recording_routes(tmp_path, directory=own_directory(tmp_path))
    first = start_controller(routes)

    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(place_call, "12345", SPEAKS_AFTER_BRIDGE, caller=CITIZEN, talk_ms=40000)
        until(lambda: first.saw("recording_started"), timeout=30, what="the department leg to be recorded")
        time.sleep(3)
        first.killed = True
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(5)
        (started,) = first.events("recording_started")
        second = start_controller(routes)
        (rec,) = kept(second, timeout=40)
        call.result()

    assert rec["name"] == started["recording"] and rec["party"] == "市公安局"
    path = Path(str(rec["path"]))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == rec["sha256"] and rec["bytes"] == path.stat().st_size
    with wave.open(str(path)) as w:
        seconds = w.getnframes() / w.getframerate()
    assert seconds >= 3 and abs(seconds - float(str(rec["seconds"]))) < 0.01  # the talk before the kill, at least
    assert channel_levels(path)[1] > 0.005  # the department, speaking the whole time, is audible
    assert sorted(p.name for p in path.parent.glob(f"{rec['name']}.*")) == [path.name]  # no raw, plan, marker
    assert second.saw("recording_leftover_finished", recording=rec["name"])
