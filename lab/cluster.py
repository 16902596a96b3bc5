"""The cluster profile's processes: `python -m lab cluster start|stop|status` (./cluster/clusterctl).

Kamailio's dispatcher as the entry point (udp 127.0.0.1:5160) in front of two Asterisk +
controller nodes sharing one call log (the cluster's own PostgreSQL unless HOTLINE_CALLLOG names
another), plus the cluster's SIPp phones. It runs beside the single-node lab without touching
it: every port, pid file, directory and phone is its own. Both nodes run the Asterisk of the
lab's sid root, each in a private mount namespace on its own bind mount of it (the lab's stop
never sees a node as "a process inside its root"); a node's configuration is rendered from
dialplan/ at every start (cluster/render_node.py).

Environment: HOTLINE_CALLLOG, HOTLINE_CLUSTER_DB (default hotline), HOTLINE_CLUSTER_STATE
(default $HOTLINE_STATE/cluster), HOTLINE_STATE, HOTLINE_CACHE, HOTLINE_CARRIER_NETS; the
controllers get HOTLINE_CLOCK_START, HOTLINE_SHUTDOWN_GRACE, HOTLINE_PARTNER_SECRET_* as given.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lab.daemon import LabError, PidFile, rotate_log, say, signal_pid, spawn, state_lock, tail
from lab.manager import ARI_USER, ROOT, _raise_nofile, ari_status, write_ari_users
from lab.processes import REPO, STATE, ControllerProcess
from lab.sipp.phone import Phone

CSTATE = Path(os.environ.get("HOTLINE_CLUSTER_STATE", STATE / "cluster"))
PW_FILE = STATE / "ari-password"
KEY_FILE = STATE / "caller-hash.key"
PROXY_IP, PROXY_PORT = "127.0.0.1", 5160  # not 5070: the demo citizen's default SIP port
RUN = Path("/run/hotline-cluster")  # the nodes' mount points, Kamailio's runtime files
KAM_RUN = RUN / "kamailio"
KAM_CTL = f"unix:{KAM_RUN}/ctl.sock"
PG_DIR = Path("/var/lib/hotline-cluster/postgres")
PG_PORT = 5433
PG_USER = "hotline"


@dataclass(frozen=True)
class Node:
    """A node: SIP, ARI/HTTP and metrics ports, RTP range — all disjoint from the lab's."""

    name: str
    sip: int
    http: int
    metrics: int
    rtp: str


NODES = (Node("node1", 5161, 8188, 9346, "21000-21999"), Node("node2", 5162, 8288, 9347, "22000-22999"))
# Named after the aors of dialplan/pjsip.conf they replace: (name, SIP port, RTP port).
PHONES = (
    ("departments", 5180, 8800),
    ("operators", 5190, 8820),
    ("operator-1", 5191, 8840),
    ("operator-2", 5192, 8860),
    ("partners", 5200, 8880),
)


def database() -> str:
    return os.environ.get("HOTLINE_CLUSTER_DB", "hotline")


# -- PostgreSQL (Debian's, a private instance: not the system service) ------------------------
def _pg_tool(tool: str) -> list[str]:
    """Run a PostgreSQL tool (the newest installed) as the postgres user: it refuses to run as root."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    if not bins:
        raise LabError("PostgreSQL is not installed (./hotlinectl setup installs it)")
    return ["runuser", "-u", "postgres", "--", str(bins[-1] / tool)]


def _pg(tool: str, *args: str, capture: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_pg_tool(tool), *args],
        cwd="/",
        stdin=subprocess.DEVNULL,
        capture_output=capture,
        text=True,
        check=False,
    )


def _pg_ok(tool: str, *args: str) -> str:
    done = _pg(tool, *args)
    if done.returncode != 0:
        raise LabError(f"postgres: {tool} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def postgres_running() -> bool:
    return (PG_DIR / "PG_VERSION").exists() and _pg("pg_ctl", "-D", str(PG_DIR), "status").returncode == 0


def start_postgres() -> str:
    """Start the cluster's PostgreSQL (creating it the first time); the nodes' call-log URL."""
    pw_file = CSTATE / "postgres-password"
    if not pw_file.exists() or not pw_file.stat().st_size:
        pw_file.write_text(os.urandom(16).hex() + "\n")
        pw_file.chmod(0o600)
    password = pw_file.read_text().strip()
    if not (PG_DIR / "PG_VERSION").exists():
        say(f"postgres: creating the cluster's database in {PG_DIR}")
        shutil.rmtree(PG_DIR, ignore_errors=True)
        subprocess.run(["install", "-d", "-o", "postgres", "-g", "postgres", "-m", "700", str(PG_DIR)], check=True)
        initial = Path(f"{PG_DIR}.pw")
        subprocess.run(
            ["install", "-o", "postgres", "-g", "postgres", "-m", "600", str(pw_file), str(initial)], check=True
        )
        try:
            _pg_ok(
                "initdb",
                *("-D", str(PG_DIR), "-U", PG_USER, f"--pwfile={initial}", "--auth-local=trust"),
                *("--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"),
            )
        finally:
            initial.unlink(missing_ok=True)
    if not postgres_running():
        # pg_ctl leaves the postmaster running: it inherits nothing (the runner closes every
        # descriptor but stdin/stdout/stderr, which go to /dev/null and pipes closed at its exit).
        done = subprocess.run(
            [
                *_pg_tool("pg_ctl"),
                *("-D", str(PG_DIR), "-l", str(PG_DIR / "server.log"), "-w", "-t", "60"),
                *("-o", f"-p {PG_PORT} -k {PG_DIR} -c listen_addresses=127.0.0.1", "start"),
            ],
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise LabError(f"postgres did not start: {done.stderr.strip()}\n{tail(PG_DIR / 'server.log')}")
        say(f"postgres: running on 127.0.0.1:{PG_PORT}")
    psql = ("psql", "-h", str(PG_DIR), "-p", str(PG_PORT), "-U", PG_USER, "-d", "postgres", "-qtAc")
    # The nodes use the password in postgres-password, whatever the database was created with
    # (socket connections are trusted: only root and postgres reach PG_DIR).
    _pg_ok(*psql, f"ALTER ROLE {PG_USER} PASSWORD '{password}'")
    name = database()
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise LabError(f"HOTLINE_CLUSTER_DB must be a plain lowercase name, got {name!r}")
    if "1" not in _pg_ok(*psql, f"SELECT 1 FROM pg_database WHERE datname = '{name}'"):
        _pg_ok("createdb", "-h", str(PG_DIR), "-p", str(PG_PORT), "-U", PG_USER, name)
    return f"postgresql://{PG_USER}:{password}@127.0.0.1:{PG_PORT}/{name}"


def stop_postgres() -> None:
    if postgres_running():
        say("stopping postgres")
        _pg_ok("pg_ctl", "-D", str(PG_DIR), "-m", "fast", "-w", "-t", "60", "stop")


# -- nodes ------------------------------------------------------------------------------------
def _root_ids() -> tuple[int, int]:
    from lab.manager import Asterisk

    return Asterisk(STATE, ROOT)._root_ids()


def install_node(node: Node) -> None:
    """The node's configuration and directories inside the root (/etc/hotline-NAME, ...)."""
    uid, gid = _root_ids()
    etc = ROOT / f"etc/hotline-{node.name}"
    shutil.rmtree(etc, ignore_errors=True)
    aors = [arg for name, port, _ in PHONES for arg in ("--aor", f"{name}=127.0.0.1:{port}")]
    # A node's carrier is the dispatcher (calls arrive through it). Nodes place no calls of their own
    # (ivr/outbound runs on a single controller), but the aor must not point at the lab's citizen phone.
    aors += ["--aor", f"carrier={PROXY_IP}:{PROXY_PORT}"]
    rendered = subprocess.run(
        [sys.executable, str(REPO / "cluster/render_node.py"), "node", "dialplan", str(etc)]
        + ["--name", node.name, "--sip", str(node.sip), "--http", str(node.http), "--rtp", node.rtp]
        + ["--proxy", f"{PROXY_IP}:{PROXY_PORT}", *aors],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if rendered.returncode != 0:
        raise LabError(f"cannot render {node.name}'s configuration: {rendered.stderr.strip()}")
    write_ari_users(etc, PW_FILE, gid, by="python -m lab cluster")
    own = f"hotline-{node.name}"
    for d in ("run", "var/lib", "var/spool", "var/log", "var/cache"):
        for where in (ROOT / d / own, *((ROOT / d / own / "recording",) if d == "var/spool" else ())):
            where.mkdir(parents=True, exist_ok=True)
            os.chown(where, uid, gid)
            where.chmod(0o750)
    (ROOT / f"var/lib/hotline-{node.name}").chmod(0o755)
    # Its own astdatadir: Debian's data through links, the prompts as the node's own copy (the
    # lab replaces its copy at every start).
    data = ROOT / f"var/lib/hotline-{node.name}/data"
    shutil.rmtree(data, ignore_errors=True)
    (data / "sounds/hotline").mkdir(parents=True)
    for entry in (ROOT / "usr/share/asterisk").iterdir():
        if entry.name != "sounds":
            (data / entry.name).symlink_to(f"/usr/share/asterisk/{entry.name}")
    for entry in (ROOT / "usr/share/asterisk/sounds").iterdir():
        if entry.name != "hotline":
            (data / "sounds" / entry.name).symlink_to(f"/usr/share/asterisk/sounds/{entry.name}")
    prompts = sorted((STATE / "sounds").glob("*.wav"))
    if not prompts:
        say(f"warning: no prompts in {STATE / 'sounds'} (run ./hotlinectl setup): callers hear silence")
    for wav in prompts:
        shutil.copy(wav, data / "sounds/hotline" / wav.name)
    subprocess.run(["chmod", "-R", "a+rX", str(data)], check=True)


def node_asterisk(node: Node) -> PidFile:
    return PidFile(CSTATE / f"{node.name}-asterisk.pid", f"hotline-{node.name}/asterisk.conf")


# The bind mount, /proc and /dev exist only in the node's namespace and vanish with it (also
# after a kill -9). unshare, sh and chroot all exec: the pid is Asterisk's own.
NAMESPACE_SCRIPT = """
mount --bind "$1" "$2" && mount -t proc proc "$2/proc" && mount --bind /dev "$2/dev" || exit 97
root=$2
shift 2
exec chroot "$root" "$@"
"""


def start_node_asterisk(node: Node) -> None:
    pid_file = node_asterisk(node)
    if pid_file.pid():
        say(f"{node.name}: asterisk already running (pid {pid_file.pid()})")
        return
    install_node(node)
    log = CSTATE / f"{node.name}-asterisk.log"
    rotate_log(log)
    mount_point = RUN / f"{node.name}-root"
    mount_point.mkdir(parents=True, exist_ok=True)
    proc = spawn(
        ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", NAMESPACE_SCRIPT]
        + ["node-namespace", str(ROOT), str(mount_point)]
        + ["asterisk", "-C", f"/etc/hotline-{node.name}/asterisk.conf", "-f", "-U", "asterisk", "-G", "asterisk"],
        log=log,
        preexec=_raise_nofile,
    )
    pid_file.write(proc.pid)
    say(f"{node.name}: asterisk started (pid {proc.pid}), waiting for ARI on 127.0.0.1:{node.http}")
    deadline = time.monotonic() + 60
    code = 0
    while time.monotonic() < deadline:
        code = ari_status(f"http://127.0.0.1:{node.http}/ari", PW_FILE)
        if code == 200:
            return
        if proc.poll() is not None:
            pid_file.remove()
            raise LabError(f"{node.name}: asterisk (pid {proc.pid}) exited during start-up\n{tail(log)}")
        time.sleep(0.5)
    raise LabError(
        f"{node.name}: ARI on 127.0.0.1:{node.http} did not answer 200 within 60 s (HTTP {code})\n{tail(log)}"
    )


def node_controller(node: Node, calllog: str = "") -> ControllerProcess:
    workdir = CSTATE / node.name
    return ControllerProcess(
        workdir,
        calllog=None,
        log_path=CSTATE / f"{node.name}-controller.log",
        key_file=KEY_FILE,
        clock=None,
        partner_secret=None,
        shutdown_grace=None,
        log_format=None,
        pid_file=CSTATE / f"{node.name}-controller.pid",
        env={
            "ARI_URL": f"http://127.0.0.1:{node.http}/ari",
            "ARI_USER": ARI_USER,
            "HOTLINE_STATE": str(workdir),
            "HOTLINE_CALLLOG": calllog,
            "HOTLINE_METRICS_ADDR": f"127.0.0.1:{node.metrics}",
            # What the node's own Asterisk wrote of refused and fallback calls (its astlogdir).
            "HOTLINE_ASTERISK_EVENTS": str(ROOT / f"var/log/hotline-{node.name}/hotline-events.db"),
            "HOTLINE_NODE": node.name,
        },
    )


def cluster_phones() -> list[Phone]:
    # As the lab's phones; the message trace lets the tests see every INVITE a node sent.
    return [
        Phone(
            port,
            CSTATE,
            "phone_answer.xml",
            talk_ms=2000,
            rtp_port=rtp,
            name=f"phone-{name}",
            trace_msg=True,
            pid_file=CSTATE / f"phone-{name}.pid",
        )
        for name, port, rtp in PHONES
    ]


# -- Kamailio ---------------------------------------------------------------------------------
def kamailio() -> PidFile:
    return PidFile(CSTATE / "kamailio.pid", "kamailio")


def dispatcher_list() -> str:
    done = subprocess.run(
        ["kamcmd", "-s", KAM_CTL, "dispatcher.list"], capture_output=True, text=True, timeout=10, check=False
    )
    return done.stdout


def nodes_active() -> int:
    return dispatcher_list().count("FLAGS: AP")


def start_kamailio() -> None:
    pid_file = kamailio()
    if pid_file.pid():
        say(f"kamailio already running (pid {pid_file.pid()})")
        return
    numbers = subprocess.run(
        [sys.executable, str(REPO / "cluster/render_node.py"), "numbers", "dialplan"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if numbers.returncode != 0:
        raise LabError(f"cannot read the hotline numbers: {numbers.stderr.strip()}")
    KAM_RUN.mkdir(parents=True, exist_ok=True)
    # set 1, destination, flags 0, priority 0, attrs
    (KAM_RUN / "dispatcher.list.tmp").write_text("".join(f"1 sip:127.0.0.1:{n.sip} 0 0 node={n.name}\n" for n in NODES))
    (KAM_RUN / "dispatcher.list.tmp").replace(KAM_RUN / "dispatcher.list")
    subprocess.run(["chown", "-R", "kamailio:kamailio", str(KAM_RUN)], check=True)
    log = CSTATE / "kamailio.log"
    rotate_log(log)
    # -DD: in the foreground (the pid is the main process; workers are its children); -E: log to
    # stderr (our log); -u/-g: Debian's kamailio user after binding.
    proc = spawn(
        ["kamailio", "-f", str(REPO / "cluster/kamailio.cfg"), "-DD", "-E", "-u", "kamailio", "-g", "kamailio"]
        + ["-Y", str(KAM_RUN), "-A", f"LISTEN=udp:{PROXY_IP}:{PROXY_PORT}"]
        + ["-A", f'PROXY_URI="sip:{PROXY_IP}:{PROXY_PORT}"', "-A", f'DISPATCHER_LIST="{KAM_RUN}/dispatcher.list"']
        + ["-A", f'CTL_SOCKET="{KAM_CTL}"', "-A", f'HOTLINE_NUMBERS="{numbers.stdout.strip()}"']
        + ["-A", f'CARRIER_NETS="{os.environ.get("HOTLINE_CARRIER_NETS", "127.0.0.1/32")}"'],
        log=log,
    )
    pid_file.write(proc.pid)
    say(f"kamailio started (pid {proc.pid}) on udp:{PROXY_IP}:{PROXY_PORT}, waiting for every node to answer probes")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pid_file.remove()
            raise LabError(f"kamailio (pid {proc.pid}) exited during start-up\n{tail(log)}")
        if nodes_active() == len(NODES):
            return
        time.sleep(0.5)
    raise LabError(
        f"the dispatcher did not see all {len(NODES)} nodes answer within 30 s (./cluster/clusterctl status)\n"
        f"{dispatcher_list()}"
    )


# -- commands ---------------------------------------------------------------------------------
def start() -> None:
    CSTATE.mkdir(parents=True, exist_ok=True)
    with state_lock(CSTATE, name=".clusterctl.lock"):
        calllog = os.environ.get("HOTLINE_CALLLOG") or start_postgres()
        for phone in cluster_phones():
            if not phone.running_pid():
                phone.start()
        say(f"phones: {', '.join(f'{name}:{port}' for name, port, _ in PHONES)}")
        for node in NODES:
            start_node_asterisk(node)
        # One after the other: the first controller creates (or upgrades) the shared call log.
        for node in NODES:
            controller = node_controller(node, calllog)
            if controller.running_pid():
                say(f"{node.name}: controller already running (pid {controller.running_pid()})")
                continue
            rotate_log(controller.log_path)
            controller.start(timeout=30)
            say(f"{node.name}: controller ready (pid {controller.pid})")
        start_kamailio()
        say(f"running: call udp:{PROXY_IP}:{PROXY_PORT}, e.g. lab.citizen.place_call(..., via_proxy=True)")
        shown = re.sub(r"(postgres(?:ql)?://[^:/@]*):[^@]*@", r"\1:***@", calllog)
        say(f"shared call log: {shown}")


def stop() -> None:
    CSTATE.mkdir(parents=True, exist_ok=True)
    with state_lock(CSTATE, name=".clusterctl.lock"):
        # Controllers first: on SIGTERM they hand live calls back to the dialplan (apology +
        # operators); then the phones; the nodes; the entry point last, so in-dialog BYEs still pass.
        controllers = [node_controller(node) for node in NODES]
        for controller in controllers:
            pid = controller.running_pid()
            if pid:
                signal_pid(pid, signal.SIGTERM)
        for controller in controllers:
            controller.stop(timeout=35)
        phones = cluster_phones()
        for phone in phones:
            pid = phone.running_pid()
            if pid:
                signal_pid(pid, signal.SIGUSR1)
        for phone in phones:
            phone.stop(timeout=5)
        for node in NODES:
            node_asterisk(node).stop(f"{node.name} asterisk", signal.SIGTERM, 15)
        kamailio().stop("kamailio", signal.SIGTERM, 10)
        stop_postgres()  # whatever call log the nodes used: the cluster's own database never outlives a stop


def status() -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []

    def show(label: str, pid: int | None) -> None:
        rows.append((label, f"running (pid {pid})" if pid else "stopped"))

    show("kamailio", kamailio().pid())
    for node in NODES:
        show(f"{node.name} asterisk", node_asterisk(node).pid())
        controller = node_controller(node)
        show(f"{node.name} controller", controller.running_pid())
        if PW_FILE.exists():
            code = ari_status(f"http://127.0.0.1:{node.http}/ari", PW_FILE)
            rows.append(
                (f"{node.name} ARI :{node.http}", "reachable" if code == 200 else f"not reachable (HTTP {code})")
            )
    for phone in cluster_phones():
        show(phone.name.replace("-", " ", 1), phone.running_pid())
    if not os.environ.get("HOTLINE_CALLLOG") and (PG_DIR / "PG_VERSION").exists():
        rows.append(("postgres", f"running (127.0.0.1:{PG_PORT}, {PG_DIR})" if postgres_running() else "stopped"))
    if kamailio().pid():
        flags = re.findall(r"URI: (\S+)\s+FLAGS: (\S+)", dispatcher_list())
        rows.append(("dispatcher", " ".join(f"{uri}={flag}" for uri, flag in flags) + " (AP = active, IP = inactive)"))
    return rows
