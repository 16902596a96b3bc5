"""The cluster profile: Kamailio's dispatcher in front of two Asterisk+controller nodes.

Real parts only: `cluster/clusterctl start` (Kamailio on 127.0.0.1:5160, node1 and node2, the
cluster's SIPp phones), SIPp citizens calling the dispatcher, one call log shared by both nodes'
controllers. Which node took a call is read twice, independently: from the Contact of the 200 OK
the citizen got, and from the call-log row's channel id (each node's Asterisk names its channels
after itself).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from ivr import privacy
from ivr.calllog import CallLog, open_calllog
from ivr.operators.desk import seat_token
from ivr.timekeeping import LOCAL_TZ
from lab.citizen import CallRun, place_call
from tests.integration.conftest import OFFICE_HOURS, PARTNER_SECRET, PARTNER_SECRET_ENVS, REPO, STATE, until

pytestmark = pytest.mark.integration

CLUSTERCTL = str(REPO / "cluster" / "clusterctl")
CSTATE = STATE / "cluster"
ENTRY = "127.0.0.1:5160"
NODES = {"node1": {"sip": 5161, "http": 8188, "metrics": 9346}, "node2": {"sip": 5162, "http": 8288, "metrics": 9347}}
# kamailio.cfg: probes every 2 s, 2 missed take a node out; an INVITE unanswered for 2 s moves on.
PROBE_INTERVAL_S, PROBE_THRESHOLD, FR_TIMER_S = 2, 2, 2
DETECTION_BOUND_S = PROBE_INTERVAL_S * PROBE_THRESHOLD + FR_TIMER_S
OBSERVATION_SLACK_S = 1.0  # the test sees the flag by polling kamcmd on a busy 2-core machine
CITIZEN_PORTS = 5300  # citizens' SIP ports 5300-5339 (media 8300-8690): clear of the lab's


def clusterctl(cmd: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLUSTERCTL, cmd], cwd=REPO, env=env, text=True, capture_output=True, timeout=300)


@dataclass
class Cluster:
    env: dict[str, str]
    calllog: CallLog
    key: bytes
    waiting: dict[str, int] = field(default_factory=dict)  # callers in each node's line, as seats() last saw

    def pid(self, name: str) -> int:
        return int((CSTATE / f"{name}.pid").read_text())

    def dispatcher(self) -> dict[str, str]:
        """The dispatcher's view: node SIP URI -> flags (AP active, IP inactive, ...)."""
        out = subprocess.run(
            ["kamcmd", "-s", "unix:/run/hotline-cluster/kamailio/ctl.sock", "dispatcher.list"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout
        return dict(re.findall(r"URI: (\S+)\s+FLAGS: (\S+)", out))

    def node_flags(self, node: str) -> str:
        return self.dispatcher().get(f"sip:127.0.0.1:{NODES[node]['sip']}", "")

    def channels(self, node: str) -> list[dict[str, Any]]:
        return self.ari(node, "/channels")

    def bridges(self, node: str) -> list[dict[str, Any]]:
        return self.ari(node, "/bridges")

    def ari(self, node: str, path: str) -> list[dict[str, Any]]:
        password = (STATE / "ari-password").read_text().strip()
        mgr = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        url = f"http://127.0.0.1:{NODES[node]['http']}/ari"
        mgr.add_password(None, url, "hotline", password)
        opener = urllib.request.build_opener(urllib.request.HTTPBasicAuthHandler(mgr))
        with opener.open(f"{url}{path}", timeout=5) as resp:
            return list(json.loads(resp.read()))

    def seats(self, node: str, change: tuple[str, str] | None = None) -> dict[str, str]:
        """The node's operators' API (as `hotline seats`): optionally set one seat's state; every seat's state."""
        headers = {"Authorization": f"Bearer {seat_token(self.key, '*')}", "Content-Type": "application/json"}
        base = f"http://127.0.0.1:{NODES[node]['metrics']}/api/v1/seats"
        if change is not None:
            seat, state = change
            body = json.dumps({"state": state}).encode()
            urllib.request.urlopen(urllib.request.Request(f"{base}/{seat}/state", body, headers), timeout=5).close()
        with urllib.request.urlopen(urllib.request.Request(base, headers=headers), timeout=5) as resp:
            shown = json.loads(resp.read())
        self.waiting[node] = shown["waiting"]
        return {s["seat"]: s["state"] for s in shown["seats"]}

    def seat_invites(self, endpoint: str) -> int:
        log = CSTATE / f"phone-{endpoint}-messages.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        return sum(1 for line in text.splitlines() if line.startswith("INVITE sip:"))

    def department_invites(self) -> int:
        log = CSTATE / "phone-departments-messages.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        return sum(1 for line in text.splitlines() if line.startswith("INVITE sip:"))

    def row_of(self, caller: str) -> list[dict[str, Any]]:
        return self.calllog.calls("caller_hash = ?", (privacy.caller_hash(caller, self.key),))


def drop_databases_of_earlier_tests(server: str, keep: str) -> None:
    """The cluster's PostgreSQL outlives a test (clusterctl stop keeps its data): drop what earlier tests left."""
    with psycopg.connect(f"{server}/postgres", autocommit=True) as db:
        names = [
            row[0]
            for row in db.execute(
                "SELECT datname FROM pg_database WHERE datname ~ '^t[0-9]+$' AND datname <> %s", (keep,)
            )
        ]
        for name in names:
            db.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    # The cluster's own PostgreSQL holds the shared call log; each test gets a database of its own.
    database = f"t{time.time_ns()}"
    env = {
        **os.environ,
        "HOTLINE_STATE": str(STATE),
        "HOTLINE_CLUSTER_DB": database,
        "HOTLINE_CLOCK_START": OFFICE_HOURS,
        "HOTLINE_SHUTDOWN_GRACE": "5",
        **{name: PARTNER_SECRET for name in PARTNER_SECRET_ENVS},
    }
    env.pop("HOTLINE_CALLLOG", None)
    clusterctl("stop", env)  # a cluster left running would not use this test's call log
    started = clusterctl("start", env)
    if started.returncode != 0:
        clusterctl("stop", env)
        pytest.fail(f"clusterctl start failed:\n{started.stdout}\n{started.stderr}")
    pids = {p.stem: int(p.read_text()) for p in CSTATE.glob("*.pid")}
    key = (STATE / "caller-hash.key").read_text().strip().encode()
    server = f"postgresql://hotline:{(CSTATE / 'postgres-password').read_text().strip()}@127.0.0.1:5433"
    drop_databases_of_earlier_tests(server, keep=database)
    url = f"{server}/{database}"
    env["HOTLINE_CALLLOG"] = url  # for `hotline report` in the tests
    reader = open_calllog(url, tmp_path / "reader.journal")
    yield Cluster(env, reader, key)
    reader.close()
    stopped = clusterctl("stop", env)
    assert stopped.returncode == 0, stopped.stderr
    alive = {name: pid for name, pid in pids.items() if os.path.exists(f"/proc/{pid}")}
    assert not alive, f"clusterctl stop left processes running: {alive}"


@dataclass
class Citizen:
    """One citizen's call as the citizen saw it."""

    caller: str
    placed_at: float
    run: CallRun | None = None
    ended_at: float = 0.0

    @property
    def succeeded(self) -> bool:
        return self.run is not None and self.run.succeeded

    def answered_by(self) -> str | None:
        """The node whose 200 OK to the INVITE the citizen received (its Contact), if any."""
        assert self.run is not None
        text = (self.run.workdir / "messages.log").read_text(errors="replace")
        for message in text.split("\n\n"):
            if message.lstrip().startswith("SIP/2.0 200") and "CSeq: 1 INVITE" in message:
                port = re.search(r"Contact: <sip:127\.0\.0\.1:(\d+)>", message)
                return next((n for n, p in NODES.items() if port and int(port.group(1)) == p["sip"]), None)
        return None


def call(n: int, to: str, keys: str, talk_ms: int) -> Citizen:
    citizen = Citizen(caller=f"1391234{n:04d}", placed_at=time.monotonic())
    citizen.run = place_call(
        to,
        keys,
        caller=citizen.caller,
        talk_ms=talk_ms,
        target=ENTRY,
        via_proxy=True,
        local_port=CITIZEN_PORTS + n % 40,
        timeout_s=60,
    )
    citizen.ended_at = time.monotonic()
    return citizen


def node_of(row: dict[str, Any]) -> str:
    return str(row["channel_id"]).split("-", 1)[0]


def test_calls_to_the_entry_point_are_spread_over_both_nodes_and_every_one_reaches_its_department(
    cluster: Cluster,
) -> None:
    calls = [("12345", "1"), ("12310", "")] * 12
    with ThreadPoolExecutor(6) as pool:
        citizens = [f.result() for f in [pool.submit(call, n, to, keys, 9000) for n, (to, keys) in enumerate(calls)]]

    assert all(c.succeeded for c in citizens), [c.run.stderr[-500:] for c in citizens if not c.succeeded]  # type: ignore[union-attr]
    answered = {c.caller: c.answered_by() for c in citizens}
    by_node = {n: sum(1 for v in answered.values() if v == n) for n in NODES}
    assert sum(by_node.values()) == len(calls)
    # Round robin: each node takes half, give or take a call.
    assert all(abs(count - len(calls) / 2) <= 1 for count in by_node.values()), by_node
    until(lambda: cluster.department_invites() >= len(calls), timeout=10, what="the departments phone's INVITEs")
    assert cluster.department_invites() == len(calls)
    # One finished row per call, written by the node that answered it.
    until(
        lambda: all(r["outcome"] != "in_progress" for r in cluster.calllog.calls()),
        timeout=15,
        what="every call to finish in the call log",
    )
    for c in citizens:
        rows = cluster.row_of(c.caller)
        assert len(rows) == 1, (c.caller, rows)
        assert node_of(rows[0]) == answered[c.caller]
        assert rows[0]["outcome"] != "in_progress"
    assert len(cluster.calllog.calls()) == len(calls)
    # Every call's ticket is in the shared log: two nodes never issue the same number (HOTLINE_NODE).
    ticketed = [r["ticket_id"] for r in cluster.calllog.calls() if r["ticket_id"]]
    assert len(ticketed) == len(calls) and len(set(ticketed)) == len(ticketed)
    assert {t["ticket_id"] for t in cluster.calllog.tickets()} == set(ticketed)
    assert {t.split("-")[2] for t in ticketed} == set(NODES)
    for node in NODES:
        assert cluster.channels(node) == []


def test_the_cluster_runs_beside_the_lab_without_a_process_or_mount_in_the_labs_root(cluster: Cluster) -> None:
    # What `hotlinectl stop-asterisk` checks before unmounting its root: processes whose root is
    # the sid root, and mounts below it. The nodes run on their own bind mounts of it.
    root = os.path.realpath(os.environ.get("HOTLINE_CACHE", "/var/cache/hotline12345") + "/sid-root")
    ours = {name: cluster.pid(name) for name in ("node1-asterisk", "node2-asterisk")}
    assert {name: os.readlink(f"/proc/{pid}/root") for name, pid in ours.items()} == {
        name: f"/run/hotline-cluster/{name.split('-')[0]}-root" for name in ours
    }
    with open("/proc/self/mountinfo") as mounts:
        assert not [m for m in mounts if "/run/hotline-cluster" in m.split()[4]]
    assert all(os.readlink(f"/proc/{pid}/root") != root for pid in ours.values())
    # ...and the nodes still answer their probes and take a call.
    assert set(cluster.dispatcher().values()) == {"AP"}
    assert call(0, "12310", "", 2000).succeeded


def test_the_assessment_report_over_the_shared_call_log_counts_each_call_once(cluster: Cluster) -> None:
    calls = [("12345", "1"), ("12310", "")] * 3
    with ThreadPoolExecutor(3) as pool:
        citizens = [f.result() for f in [pool.submit(call, n, to, keys, 9000) for n, (to, keys) in enumerate(calls)]]
    assert all(c.succeeded for c in citizens)
    assert {c.answered_by() for c in citizens} == set(NODES)  # both nodes wrote to the log
    until(
        lambda: len(cluster.calllog.calls("outcome != 'in_progress'")) == len(calls),
        timeout=15,
        what="every call to finish in the call log",
    )

    today = dt.datetime.now(LOCAL_TZ).date()
    out = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "hotline"),
            "report",
            "--from",
            str(today - dt.timedelta(days=1)),
            "--to",
            str(today + dt.timedelta(days=1)),
            "--calllog",
            cluster.env["HOTLINE_CALLLOG"],
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    report = json.loads(out.stdout)
    assert report["centre"]["calls"] == len(calls)
    units = {(u["unit"], u["mode"]): u for u in report["units"]}
    assert units[("市公安局", "merge")]["total"]["routed"] == 3
    assert units[("市编办", "transfer")]["total"]["routed"] == 3


def test_the_entry_point_takes_only_hotline_numbers_and_a_node_takes_calls_only_from_it(cluster: Cluster) -> None:
    not_ours = place_call(
        "99999",
        "",
        caller="13912340000",
        talk_ms=1000,
        target=ENTRY,
        via_proxy=True,
        local_port=CITIZEN_PORTS,
        timeout_s=10,
    )
    assert not not_ours.succeeded
    assert "SIP/2.0 404 Not Found" in (not_ours.workdir / "messages.log").read_text()
    # Straight to a node, around the dispatcher: the node identifies no carrier at that address.
    bypass = place_call(
        "12310",
        "",
        caller="13912340001",
        talk_ms=1000,
        target="127.0.0.1:5161",
        local_port=CITIZEN_PORTS + 1,
        timeout_s=10,
    )
    assert not bypass.succeeded
    assert "SIP/2.0 200" not in (bypass.workdir / "messages.log").read_text()
    assert cluster.calllog.calls() == []
    assert cluster.department_invites() == 0


def test_a_node_killed_under_load_is_taken_out_within_seconds_and_only_its_calls_in_flight_are_lost(
    cluster: Cluster,
) -> None:
    marks: list[float] = []
    total, pace_s, kill_after = 36, 0.5, 10
    futures: list[Future[Citizen]] = []
    killed_at = 0.0
    with ThreadPoolExecutor(17) as pool:
        for n in range(total):
            futures.append(pool.submit(call, n, "12310", "", 6000))
            if n == kill_after:
                until(lambda: cluster.channels("node2"), timeout=10, what="a call in progress on node2")
                # A media server dying: Asterisk and its controller, no clean-up of any kind.
                os.kill(cluster.pid("node2-asterisk"), signal.SIGKILL)
                os.kill(cluster.pid("node2-controller"), signal.SIGKILL)
                killed_at = time.monotonic()
                taken_out = pool.submit(
                    until,
                    lambda: cluster.node_flags("node2").startswith("I"),
                    timeout=DETECTION_BOUND_S + 5,
                    interval=0.05,
                    what="the dispatcher to take node2 out",
                )
                taken_out.add_done_callback(lambda _: marks.append(time.monotonic()))
            time.sleep(pace_s)
        citizens = [f.result() for f in futures]
        taken_out.result()
    out_at = marks[0]

    detection_s = out_at - killed_at
    before = [c for c in citizens if c.placed_at < killed_at]
    window = [c for c in citizens if killed_at <= c.placed_at < out_at]
    after = [c for c in citizens if c.placed_at >= out_at]
    on_node2_at_kill = [c for c in before if c.answered_by() == "node2" and c.ended_at > killed_at]
    setup_lost = [c for c in citizens if c.answered_by() is None]
    print(
        f"\ncluster failover: node2 out of rotation {detection_s:.1f} s after kill -9 "
        f"(bound {DETECTION_BOUND_S} s); calls placed before/during/after detection: "
        f"{len(before)}/{len(window)}/{len(after)}; in flight on node2 and lost: {len(on_node2_at_kill)}; "
        f"lost in set-up: {len(setup_lost)}; window calls' set-up time: "
        f"{[round(c.ended_at - c.placed_at - 6, 1) for c in window]} s over talk time"
    )

    assert detection_s <= DETECTION_BOUND_S + OBSERVATION_SLACK_S
    assert after, "the load must go on past the detection"
    # Every call placed after node2 was taken out went to node1 and succeeded; so did every call
    # placed while node2 was dead but still in rotation (the failure route retried it on node1).
    for c in window + after:
        assert c.succeeded and c.answered_by() == "node1", (c.caller, c.run.stderr[-300:])  # type: ignore[union-attr]
    # What a media server's death costs: exactly the calls it was carrying, nothing else.
    assert on_node2_at_kill, "the kill must hit calls in progress"
    failed = [c for c in citizens if not c.succeeded]
    assert {c.caller for c in failed} == {c.caller for c in on_node2_at_kill + setup_lost}

    # No record lost: every call that reached a node has exactly one row, from that node. The
    # rows of the calls node2 carried stay in_progress: their controller died with them (a
    # controller opening the log marks such rows interrupted).
    until(
        lambda: (
            len(cluster.calllog.calls("outcome != 'in_progress'"))
            >= len(citizens) - len(on_node2_at_kill) - len(setup_lost)
        ),
        timeout=15,
        what="the survivors' calls to finish in the call log",
    )
    reached = [c for c in citizens if c.answered_by() is not None]
    for c in reached:
        rows = cluster.row_of(c.caller)
        assert len(rows) == 1 and node_of(rows[0]) == c.answered_by(), (c.caller, rows)
        lost = c in on_node2_at_kill
        assert (rows[0]["outcome"] == "in_progress") == lost, (c.caller, rows[0]["outcome"])
    assert len(cluster.calllog.calls()) == len(reached) + sum(len(cluster.row_of(c.caller)) for c in setup_lost)
    assert cluster.channels("node1") == []


def test_a_caller_waiting_on_one_node_is_answered_by_the_seat_an_operator_signs_in_on_the_other(
    cluster: Cluster,
) -> None:
    # Every seat signed out on node1: the shared line tells node2 too (before, node2 kept its own states).
    for seat in ("seat-1", "seat-2"):
        cluster.seats("node1", (seat, "signed_out"))
    until(
        lambda: set(cluster.seats("node2").values()) == {"signed_out"},
        timeout=10,
        what="node2 to see the seats node1 signed out",
    )
    with ThreadPoolExecutor(1) as pool:
        citizen = pool.submit(call, 1, "12345", "0", 30000)
        # The citizen asked for a person and waits: no seat is ready anywhere.
        until(lambda: any(cluster.channels(n) for n in NODES), timeout=20, what="the citizen's call to reach a node")
        (waiting_on,) = [n for n in NODES if cluster.channels(n)]
        other = next(n for n in NODES if n != waiting_on)
        until(
            lambda: cluster.seats(waiting_on) and cluster.waiting[waiting_on] == 1,
            timeout=20,
            what="the citizen to wait in the line",
        )
        assert cluster.seat_invites("operator-1") == cluster.seat_invites("operator-2") == 0
        # An operator signs in seat-2 on the OTHER node; the waiting caller is offered it.
        cluster.seats(other, ("seat-2", "ready"))
        done = citizen.result()
    assert done.succeeded, done.run.stderr[-500:] if done.run else ""
    assert done.answered_by() == waiting_on
    assert cluster.seat_invites("operator-2") == 1 and cluster.seat_invites("operator-1") == 0
    # Rung by the caller's node (its Asterisk's SIP port in the Via), not handed over to the other one.
    invite = (CSTATE / "phone-operator-2-messages.log").read_text(errors="replace").split("INVITE sip:", 1)[1]
    assert f"Via: SIP/2.0/UDP 127.0.0.1:{NODES[waiting_on]['sip']};" in invite
    until(
        lambda: [r["outcome"] for r in cluster.row_of(done.caller)] == ["operator"],
        timeout=15,
        what="the call-log row to say operator",
    )
    (row,) = cluster.row_of(done.caller)
    assert node_of(row) == waiting_on
    left = [s["detail"] for s in cluster.calllog.steps(row["call_id"]) if s["name"] == "queue_left"]
    assert left and left[-1]["seat"] == "seat-2", left
    until(
        lambda: all(not cluster.channels(n) and not cluster.bridges(n) for n in NODES),
        timeout=10,
        what="0 channels and 0 bridges on both nodes",
    )
