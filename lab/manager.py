"""The lab's processes, started, stopped and shown from one place: `python -m lab start|stop|status`.

    asterisk     Asterisk 22 in the Debian sid root ./hotlinectl builds (ARI 127.0.0.1:8088, SIP :5060)
    controller   `hotline run` with the real routes.yaml (lab.processes.ControllerProcess)
    phones       SIPp UAS standing in for the department lines, the duty line, the seats, the partners
    prometheus   scraping the controller with monitoring/prometheus.yml (127.0.0.1:9090)

Pid files, logs and the ARI password live in the state dir (HOTLINE_STATE, default <repo>/var).
Asterisk runs chrooted in the root; mounting the root's /proc and /dev needs a root shell and
stays in ./hotlinectl (start-asterisk mounts, then calls this; stop-asterisk calls this, then
unmounts). Every process is stopped by the pid this manager recorded (lab.daemon).
"""

from __future__ import annotations

import base64
import os
import resource
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lab.daemon import LabError, PidFile, rotate_log, say, signal_pid, spawn, state_lock, tail, wait_gone
from lab.processes import REPO, STATE, ControllerProcess, health
from lab.sipp.phone import Phone, stop_process

CACHE = Path(os.environ.get("HOTLINE_CACHE", "/var/cache/hotline12345"))
ROOT = CACHE / "sid-root"
AST_CONF = "/etc/hotline/asterisk.conf"  # inside the root
ARI_URL = "http://127.0.0.1:8088/ari"
ARI_USER = "hotline"
PROMETHEUS_ADDR = "127.0.0.1:9090"


@dataclass(frozen=True)
class PhoneLine:
    """A demo phone: the name of the line it stands in for, its SIP and RTP ports."""

    name: str
    port: int
    rtp: int


# The department lines, the duty line, the two operator seats (routes.yaml operators.seats) and
# the partner platforms, on the ports dialplan/pjsip.conf sends them to.
PHONES = (
    PhoneLine("departments", 5080, 6200),
    PhoneLine("operators", 5090, 6300),
    PhoneLine("seat-1", 5091, 6400),
    PhoneLine("seat-2", 5092, 6500),
    PhoneLine("partners", 5100, 6600),
)


def ari_status(url: str = ARI_URL, password_file: Path | None = None) -> int:
    """HTTP status of GET /asterisk/info with the lab's credentials (0 = no answer)."""
    password = (password_file or STATE / "ari-password").read_text().strip()
    token = base64.b64encode(f"{ARI_USER}:{password}".encode()).decode()
    req = urllib.request.Request(f"{url}/asterisk/info", headers={"Authorization": f"Basic {token}"})
    try:
        with urllib.request.urlopen(req, timeout=3) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def chown_tree(top: Path, uid: int, gid: int) -> None:
    """chown -R, without following links (the root's links point into the root, not here)."""
    os.chown(top, uid, gid, follow_symlinks=False)
    for parent, dirs, files in os.walk(top):
        for name in (*dirs, *files):
            os.chown(os.path.join(parent, name), uid, gid, follow_symlinks=False)


def _raise_nofile() -> None:
    """In the child before exec: the soft descriptor limit up to the hard one (a call holds several)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = int(Path("/proc/sys/fs/nr_open").read_text())
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Asterisk:
    """The lab's Asterisk in the sid root, running exactly the configuration in dialplan/."""

    def __init__(self, state: Path = STATE, root: Path = ROOT) -> None:
        self.state = state
        self.root = root
        self.pid_file = PidFile(state / "asterisk.pid", "asterisk")
        self.log = state / "asterisk.console.log"
        self.password_file = state / "ari-password"

    def pid(self) -> int | None:
        return self.pid_file.pid()

    def lab_asterisks(self) -> list[int]:
        """Pids of every Asterisk running the lab's configuration, whoever started it."""
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[:3] == [b"asterisk", b"-C", AST_CONF.encode()]:
                found.append(int(proc.name))
        return sorted(found)

    def cli(self, command: str) -> str:
        done = subprocess.run(
            ["chroot", str(self.root), "asterisk", "-C", AST_CONF, "-rx", command],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return done.stdout

    def start(self) -> int:
        if not (self.root / ".hotline-ready").exists():
            raise LabError(f"{self.root} is not ready: run ./hotlinectl setup")
        if not self.password_file.is_file() or not self.password_file.stat().st_size:
            raise LabError(f"no {self.password_file}: run ./hotlinectl setup")
        running = self.pid()
        if running:
            say(f"asterisk already running (pid {running})")
            self._wait_ari(running)
            return running
        self.pid_file.remove()
        others = self.lab_asterisks()
        if others:
            pids = " ".join(map(str, others))
            raise LabError(
                f"an Asterisk that is not this state dir's is running in {self.root} (pid {pids}): "
                "it holds the lab's ports (SIP 5060, ARI 8088). Stop it from the checkout or HOTLINE_STATE that "
                f"started it (./hotlinectl stop-asterisk), or kill {pids}; this state dir is {self.state}"
            )
        if not (os.path.ismount(self.root / "proc") and os.path.ismount(self.root / "dev")):
            raise LabError(
                f"{self.root}/proc and /dev are not mounted: start Asterisk with ./hotlinectl start-asterisk"
            )
        self.install_config()
        rotate_log(self.log)
        # -f: in the foreground, so the pid is Asterisk itself (chroot execs it). It drops root
        # to the root's asterisk user (-U/-G) after binding; 5060/8088 need no privilege anyway.
        proc = spawn(
            ["chroot", str(self.root), "asterisk", "-C", AST_CONF, "-f", "-U", "asterisk", "-G", "asterisk"],
            log=self.log,
            preexec=_raise_nofile,
        )
        self.pid_file.write(proc.pid)
        say(f"asterisk started (pid {proc.pid}), waiting for ARI")
        self._wait_ari(proc.pid)
        say(f"asterisk ready: ARI {ARI_URL} (user {ARI_USER}), SIP udp 127.0.0.1:5060")
        return proc.pid

    def _wait_ari(self, pid: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        code = 0
        while time.monotonic() < deadline:
            code = ari_status(password_file=self.password_file)
            if code == 200:
                return
            if not self.pid():
                raise LabError(f"Asterisk (pid {pid}) exited during start-up\n{tail(self.log)}")
            time.sleep(0.5)
        raise LabError(
            f"ARI at {ARI_URL} did not answer 200 within {timeout:g} s (last HTTP status {code})\n{tail(self.log)}"
        )

    def stop(self) -> None:
        pid = self.pid()
        if pid is None:
            self.pid_file.remove()
            return
        say(f"stopping asterisk (pid {pid})")
        try:
            subprocess.run(
                ["chroot", str(self.root), "asterisk", "-C", AST_CONF, "-rx", "core stop now"],
                capture_output=True,
                timeout=10,
                check=False,
            )
        except subprocess.TimeoutExpired:
            pass
        if not wait_gone(pid, 15):
            self.pid_file.stop("asterisk", signal.SIGTERM, 5)
        self.pid_file.remove()

    def install_config(self) -> None:
        """A fresh copy of dialplan/ in the root at every start: what runs is exactly what is in the repo."""
        uid, gid = self._root_ids()
        etc = self.root / "etc/hotline"
        shutil.rmtree(etc, ignore_errors=True)
        etc.mkdir(parents=True)
        for conf in sorted((REPO / "dialplan").glob("*.conf")):
            shutil.copy(conf, etc / conf.name)
        # ARI credentials: only a SHA-512 crypt hash reaches the root, readable by Asterisk only.
        # rounds=1000 (glibc's minimum; the default is 5000): Asterisk verifies it on every ARI
        # request, REST over WebSocket included — at 5000 rounds ~4 ms of its CPU per request
        # (BENCHMARKS.md). The password is 18 random bytes: the work factor adds nothing against guessing.
        password = self.password_file.read_text().strip()
        salt = f"rounds=1000${os.urandom(8).hex()}"
        hashed = subprocess.run(
            ["openssl", "passwd", "-6", "-salt", salt, "-stdin"],
            input=password,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        (etc / "ari_users.conf").write_text(
            f"; generated by hotlinectl start-asterisk from {self.password_file} — do not edit\n"
            f"[{ARI_USER}]\ntype=user\nread_only=no\npassword_format=crypt\npassword={hashed}\n"
        )
        for path in (etc, *etc.iterdir()):
            os.chown(path, 0, gid)
            path.chmod(0o750 if path == etc else 0o640)

        # Prompts: sound:hotline/NAME. Debian's astdatadir is /usr/share/asterisk, so the
        # directory is linked there (like Debian's own sounds/recordings link).
        sounds = self.root / "var/lib/asterisk/sounds/hotline"
        shutil.rmtree(sounds, ignore_errors=True)
        sounds.mkdir(parents=True)
        prompts = sorted((self.state / "sounds").glob("*.wav"))
        if not prompts:
            say(f"warning: no prompts in {self.state / 'sounds'} (run ./hotlinectl setup): callers hear silence")
        for wav in prompts:
            shutil.copy(wav, sounds / wav.name)
        subprocess.run(["chmod", "-R", "a+rX", str(sounds)], check=True)
        # Where `hotline notice start --say` renders an announcement for the running Asterisk at once.
        (self.state / "asterisk-sounds").write_text(f"{sounds}\n")
        link = self.root / "usr/share/asterisk/sounds/hotline"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to("/var/lib/asterisk/sounds/hotline")

        # Run dir (astrundir): pid file and the control socket `asterisk -rx` uses.
        run = self.root / "run/hotline"
        run.mkdir(parents=True, exist_ok=True)
        os.chown(run, uid, gid)
        run.chmod(0o750)
        # Asterisk runs as its own user: it owns where it writes.
        for d in ("var/lib/asterisk", "var/log/asterisk", "var/spool/asterisk"):
            chown_tree(self.root / d, uid, gid)
        cache = self.root / "var/cache/asterisk"
        cache.mkdir(parents=True, exist_ok=True)
        os.chown(cache, uid, gid)
        # Citizens' messages (留言) recorded through ARI land here; the package does not create
        # it, and ARI answers 500 "No such file or directory" without it.
        recording = self.root / "var/spool/asterisk/recording"
        recording.mkdir(parents=True, exist_ok=True)
        os.chown(recording, uid, gid)
        recording.chmod(0o750)

    def _root_ids(self) -> tuple[int, int]:
        def field(file: str) -> int | None:
            for line in (self.root / file).read_text().splitlines():
                parts = line.split(":")
                if parts[0] == "asterisk":
                    return int(parts[2])
            return None

        uid, gid = field("etc/passwd"), field("etc/group")
        if uid is None or gid is None:
            raise LabError(f"no asterisk user/group in {self.root}")
        return uid, gid


def lab_controller(state: Path = STATE) -> ControllerProcess:
    """The lab's demo controller: the controller's own defaults (call log, clock, grace) from the
    environment, the lab's key and password, a log and pid file in the state dir."""
    return ControllerProcess(
        state,
        calllog=None,
        log_path=state / "controller.log",
        key_file=state / "caller-hash.key",
        clock=None,
        partner_secret=None,
        shutdown_grace=None,
        log_format=None,  # kv unless HOTLINE_LOG_FORMAT says json: this log is read by people
        pid_file=state / "controller.pid",
    )


def lab_phones(state: Path = STATE) -> list[Phone]:
    return [
        Phone(
            line.port,
            state,
            "phone_answer.xml",
            talk_ms=5000,  # a demo phone talks 5 s, then hangs up
            rtp_port=line.rtp,
            name=f"phone-{line.name}",
            pid_file=state / f"phone-{line.name}.pid",
        )
        for line in PHONES
    ]


class Prometheus:
    """Prometheus with monitoring/prometheus.yml (rules included), scraping the lab's controller.

    A test names its own `config` (faster scrapes), `addr` and state dir (pid file, log, data).
    """

    def __init__(
        self, state: Path = STATE, *, config: Path = REPO / "monitoring/prometheus.yml", addr: str = PROMETHEUS_ADDR
    ) -> None:
        self.state = state
        self.config = config
        self.addr = addr
        self.pid_file = PidFile(state / "prometheus.pid", "prometheus")
        self.log = state / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None  # when this process started it

    def pid(self) -> int | None:
        return self.pid_file.pid()

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.addr}/-/ready", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def start(self, timeout: float = 30.0) -> int:
        running = self.pid()
        if running:
            say(f"prometheus already running (pid {running})")
            return running
        binary = shutil.which("prometheus")
        if binary is None:
            raise LabError("prometheus is not installed: ./hotlinectl setup installs it")
        rotate_log(self.log)
        self.proc = proc = spawn(
            [
                binary,
                f"--config.file={self.config}",
                f"--storage.tsdb.path={self.state / 'prometheus'}",
                f"--web.listen-address={self.addr}",
            ],
            log=self.log,
        )
        self.pid_file.write(proc.pid)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready():
                say(f"prometheus ready on http://{self.addr} (pid {proc.pid})")
                return proc.pid
            if proc.poll() is not None:
                break
            time.sleep(0.3)
        self.stop()
        raise LabError(f"prometheus (pid {proc.pid}) not ready within {timeout:g}s\n{tail(self.log)}")

    def stop(self) -> None:
        if self.proc is not None:  # ours: stopped and reaped through its Popen
            stop_process(self.proc, signal.SIGTERM, 10)
            self.pid_file.remove()
            return
        self.pid_file.stop("prometheus", signal.SIGTERM, 10)


# -- the commands ----------------------------------------------------------------------------
PARTS = ("asterisk", "controller", "phones", "prometheus")
DEFAULT_START = ("asterisk", "controller", "phones")  # `./hotlinectl start`


def start_controller(state: Path = STATE) -> None:
    controller = lab_controller(state)
    running = controller.running_pid()
    if running:
        say(f"controller already running (pid {running})")
        return
    rotate_log(controller.log_path)
    pid = controller.start(timeout=30)
    say(f"controller ready (pid {pid}): {controller.health_url} answers 200")


def start_phones(state: Path = STATE) -> None:
    for phone in lab_phones(state):
        running = phone.running_pid()
        if running:
            say(f"{phone.name} already running (pid {running})")
            continue
        phone.start()
        say(f"{phone.name}: SIPp UAS on 127.0.0.1:{phone.port} (pid {phone.pid})")


def stop_phones(state: Path = STATE) -> None:
    phones = lab_phones(state)
    # SIPp takes a second or two to quit after SIGUSR1: signal every phone first, then wait.
    for phone in phones:
        pid = phone.running_pid()
        if pid:
            signal_pid(pid, signal.SIGUSR1)
    for phone in phones:
        phone.stop(timeout=5)


def stop_controller(state: Path = STATE) -> None:
    # It hands live calls back to the dialplan (hotline-fallback) on SIGTERM: give it the grace.
    lab_controller(state).stop(timeout=35)


STARTS: dict[str, Callable[[], object]] = {
    "asterisk": lambda: Asterisk().start(),
    "controller": start_controller,
    "phones": start_phones,
    "prometheus": lambda: Prometheus().start(),
}
STOPS: dict[str, Callable[[], object]] = {
    "asterisk": lambda: Asterisk().stop(),
    "controller": stop_controller,
    "phones": stop_phones,
    "prometheus": lambda: Prometheus().stop(),
}


def ordered(parts: tuple[str, ...]) -> list[str]:
    return [p for p in PARTS if p in parts]


def start(parts: tuple[str, ...]) -> None:
    """Start `parts` (in dependency order: Asterisk before the controller that connects to it)."""
    with state_lock(STATE):
        for part in ordered(parts or DEFAULT_START):
            STARTS[part]()


def stop(parts: tuple[str, ...]) -> None:
    """Stop `parts` (all by default), in the reverse order: the phones before the controller, Asterisk last."""
    with state_lock(STATE):
        for part in reversed(ordered(parts or PARTS)):
            STOPS[part]()


def status() -> list[tuple[str, str]]:
    """(label, state) for each part, as `python -m lab status` prints them."""
    rows: list[tuple[str, str]] = []

    def show(label: str, pid: int | None) -> None:
        rows.append((label, f"running (pid {pid})" if pid else "stopped"))

    asterisk = Asterisk()
    show("asterisk", asterisk.pid())
    controller = lab_controller()
    show("controller", controller.running_pid())
    if controller.running_pid():
        code, body = health(f"http://{os.environ.get('HOTLINE_METRICS_ADDR', '127.0.0.1:9345')}/health")
        reasons = "; ".join(body.get("reasons", [])) if body else "no answer"
        rows.append(("controller /health", "ready" if code == 200 else f"not ready (HTTP {code}: {reasons})"))
    for phone in lab_phones():
        show(phone.name.replace("-", " ", 1), phone.running_pid())
    show("prometheus", Prometheus().pid())
    if asterisk.password_file.exists():
        code = ari_status(password_file=asterisk.password_file)
        rows.append((f"ARI {ARI_URL}", "reachable" if code == 200 else f"not reachable (HTTP {code})"))
    else:
        rows.append(("ARI", "no password yet (./hotlinectl setup)"))
    if asterisk.pid():
        rows.append(("channels", " ".join(asterisk.cli("core show channels count").split("\n")).strip()))
    return rows
