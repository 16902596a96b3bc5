"""Settings: read once from the environment (and CLI flags), validated, frozen.

`Storage.from_env` — where the state, the call log and its journal are — is the one loader of
those for the controller and every CLI command (calls, tickets, callbacks, report, purge,
journal): run from any folder, a command finds the call log the controller writes. `Settings`
is the controller's whole configuration, its storage included.

ARI_URL            http://127.0.0.1:8088/ari
ARI_USER           hotline
ARI_PASSWORD       the ARI password, or
ARI_PASSWORD_FILE  a file holding it (what `hotlinectl setup` generates: var/ari-password)
ARI_APP            hotline (the Stasis application name in dialplan/extensions.conf)
HOTLINE_STATE      ./var — call log, keys, rendered prompts
HOTLINE_CALLLOG    $HOTLINE_STATE/calllog.sqlite3 — an SQLite file, or a PostgreSQL URL
                   (postgresql://user:password@host:5432/dbname; shared by a cluster's controllers)
HOTLINE_JOURNAL    where call-log writes wait while the database cannot take them: a local file,
                   $HOTLINE_CALLLOG.journal for SQLite, $HOTLINE_STATE/calllog.journal for PostgreSQL
HOTLINE_CALLER_KEY_FILE  $HOTLINE_STATE/caller-hash.key (key of the callers' keyed hash)
HOTLINE_SHUTDOWN_GRACE   30 (seconds calls in progress get to finish on SIGTERM)
HOTLINE_LOG_FORMAT kv | json
HOTLINE_METRICS_ADDR 127.0.0.1:9345 — where /metrics is served (loopback by default)
HOTLINE_CLOCK_START  e.g. 2026-11-24T10:00 — run the clock from this local time (tests, drills)
HOTLINE_NODE       this controller's id in a cluster sharing one call log (e.g. node1), equal to
                   its Asterisk's systemname: part of every ticket number, so nodes never issue the
                   same one, and at start only this node's calls left in progress are marked
                   interrupted; empty for one node
HOTLINE_ADMISSION  adaptive (default) | fixed | off — how new calls are admitted under overload
                   (ivr/controller/admission.py): adaptive follows ARI response time, event-loop lag
                   and the calls still being set up, needs no tuning; a refused call is refused at
                   once, unanswered (the carrier gets 503); off takes every call
HOTLINE_ADMISSION_MAX_SETUPS  400 — adaptive: the most calls in setup at once, whatever the signals
HOTLINE_MAX_CALL_RATE  fixed: new calls per second taken (> 0 implies fixed); set it to ~80 % of the
                   maximum BENCHMARKS.md measures: at the maximum, the refusals' own cost can tip
                   Asterisk into overload and the admitted callers wait
HOTLINE_DIAL_PATH  dialplan | ari — who rings a route's chain once the menu decided: Asterisk (default:
                   one `continue` into the generated [hotline-chain], see ivr/routing/dialplan.py;
                   recorded routes, operators and transfers stay on ARI, and so does every call while
                   Asterisk has not loaded the chains), or the controller over ARI
HOTLINE_ASTERISK_EVENTS  /var/log/asterisk/hotline-events.db — the SQLite file Asterisk writes refused and
                   fallback calls to (dialplan/cel_sqlite3_custom.conf); the controller imports them
                   into the call log (ivr/calllog/evidence.py)
HOTLINE_TEST_MODE  1: accept a weak ARI password (normally refused: a known default or < 12 characters)
<partner secret_env> the HMAC secret of each partner platform named in routes.yaml
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ivr.ari.client import AriSettings
from ivr.calllog import default_journal, is_url
from ivr.errors import ConfigError
from ivr.routing.routes import RouteTable
from ivr.tickets import NODE_ID_RE


@dataclass(frozen=True)
class Storage:
    """Where the hotline keeps its state: HOTLINE_STATE, HOTLINE_CALLLOG, HOTLINE_JOURNAL."""

    state: Path
    calllog: str | Path = field(repr=False)  # a URL is kept a str (its password stays out of repr)
    journal: Path

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, calllog: str | None = None, journal: str | None = None
    ) -> Storage:
        """`calllog` and `journal` (a command's --calllog, --journal) win over the environment."""
        env = os.environ if env is None else env
        state = Path(env.get("HOTLINE_STATE") or "var")
        target = calllog or env.get("HOTLINE_CALLLOG") or str(state / "calllog.sqlite3")
        where: str | Path = target if is_url(target) else Path(target)
        journal = journal or env.get("HOTLINE_JOURNAL")
        return cls(state, where, Path(journal) if journal else default_journal(where, state))


@dataclass(frozen=True)
class Settings:
    ari: AriSettings
    routes_path: Path
    calllog_path: str | Path = field(repr=False)  # a URL is kept a str (its password stays out of repr)
    caller_hash_key: bytes
    journal_path: Path | None = None  # None: the call log's default (ivr.calllog.default_journal)
    shutdown_grace_seconds: float = 30.0
    sounds_prefix: str = "hotline"
    log_format: str = "kv"
    log_level: str = "info"
    clock_start: dt.datetime | None = None
    metrics_addr: tuple[str, int] = ("127.0.0.1", 9345)
    node: str = ""
    max_call_rate: float = 0.0
    admission: str = "adaptive"  # adaptive | fixed | off (ivr.controller.admission)
    admission_max_setups: int = 400
    dial_path: str = "dialplan"
    asterisk_events: Path = Path("/var/log/asterisk/hotline-events.db")
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)  # for partner secrets

    def partner_secrets(self, table: RouteTable) -> dict[str, bytes]:
        """Secrets of the partners routes.yaml names, read from their environment variables."""
        out: dict[str, bytes] = {}
        for route in table.routes.values():
            partner = route.partner
            if partner is not None and self.environ.get(partner.secret_env):
                out[partner.name] = self.environ[partner.secret_env].encode()
        return out

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, routes: str | Path = "routes.yaml") -> Settings:
        env = os.environ if env is None else env
        storage = Storage.from_env(env)
        state = storage.state
        password = env.get("ARI_PASSWORD")
        if password is None:
            pw_file = env.get("ARI_PASSWORD_FILE", str(state / "ari-password"))
            password = _read_secret(pw_file, "ARI password (set ARI_PASSWORD or ARI_PASSWORD_FILE)")
        if not password:
            raise ConfigError("ARI password is empty")
        if env.get("HOTLINE_TEST_MODE") != "1":
            _refuse_weak_password(
                password,
                "ARI_PASSWORD"
                if "ARI_PASSWORD" in env
                else f"ARI_PASSWORD_FILE ({env.get('ARI_PASSWORD_FILE', str(state / 'ari-password'))})",
            )
        key_file = env.get("HOTLINE_CALLER_KEY_FILE", str(state / "caller-hash.key"))
        key = _read_secret(key_file, "caller-hash key (set HOTLINE_CALLER_KEY_FILE)").encode()
        try:
            grace = float(env.get("HOTLINE_SHUTDOWN_GRACE", "30"))
        except ValueError:
            raise ConfigError(
                f"HOTLINE_SHUTDOWN_GRACE must be a number of seconds, got {env['HOTLINE_SHUTDOWN_GRACE']!r}"
            ) from None
        clock_start = None
        if env.get("HOTLINE_CLOCK_START"):
            try:
                clock_start = dt.datetime.fromisoformat(env["HOTLINE_CLOCK_START"])
            except ValueError:
                raise ConfigError(
                    f"HOTLINE_CLOCK_START must be an ISO date-time, got {env['HOTLINE_CLOCK_START']!r}"
                ) from None
        host, _, port = env.get("HOTLINE_METRICS_ADDR", "127.0.0.1:9345").rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"HOTLINE_METRICS_ADDR must be HOST:PORT, got {env.get('HOTLINE_METRICS_ADDR')!r}")
        node = env.get("HOTLINE_NODE", "")
        if node and not NODE_ID_RE.fullmatch(node):
            raise ConfigError(f"HOTLINE_NODE must be 1-12 lowercase letters or digits, got {node!r}")
        try:
            max_call_rate = float(env.get("HOTLINE_MAX_CALL_RATE") or 0)
        except ValueError:
            raise ConfigError(
                f"HOTLINE_MAX_CALL_RATE must be calls per second (0 = no limit), got {env['HOTLINE_MAX_CALL_RATE']!r}"
            ) from None
        if max_call_rate < 0:
            raise ConfigError(f"HOTLINE_MAX_CALL_RATE must not be negative, got {max_call_rate}")
        admission, max_setups = _admission(env, max_call_rate)
        dial_path = env.get("HOTLINE_DIAL_PATH") or "dialplan"
        if dial_path not in ("ari", "dialplan"):
            raise ConfigError(f"HOTLINE_DIAL_PATH must be ari or dialplan, got {dial_path!r}")
        fmt = env.get("HOTLINE_LOG_FORMAT", "kv")
        if fmt not in ("kv", "json"):
            raise ConfigError(f"HOTLINE_LOG_FORMAT must be kv or json, got {fmt!r}")
        return cls(
            ari=AriSettings(
                url=env.get("ARI_URL", "http://127.0.0.1:8088/ari"),
                username=env.get("ARI_USER", "hotline"),
                password=password,
                app=env.get("ARI_APP", "hotline"),
            ),
            routes_path=Path(routes),
            calllog_path=storage.calllog,
            caller_hash_key=key,
            journal_path=storage.journal,
            shutdown_grace_seconds=grace,
            log_format=fmt,
            log_level=env.get("HOTLINE_LOG_LEVEL", "info"),
            clock_start=clock_start,
            metrics_addr=(host, int(port)),
            node=node,
            max_call_rate=max_call_rate,
            admission=admission,
            admission_max_setups=max_setups,
            dial_path=dial_path,
            asterisk_events=Path(env.get("HOTLINE_ASTERISK_EVENTS") or "/var/log/asterisk/hotline-events.db"),
            environ=dict(env),
        )


def _admission(env: Mapping[str, str], max_call_rate: float) -> tuple[str, int]:
    """HOTLINE_ADMISSION with HOTLINE_MAX_CALL_RATE: a rate alone means fixed; contradictions are refused."""
    mode = env.get("HOTLINE_ADMISSION") or ("fixed" if max_call_rate > 0 else "adaptive")
    if mode not in ("adaptive", "fixed", "off"):
        raise ConfigError(f"HOTLINE_ADMISSION must be adaptive, fixed or off, got {mode!r}")
    if mode == "fixed" and max_call_rate <= 0:
        raise ConfigError("HOTLINE_ADMISSION=fixed needs HOTLINE_MAX_CALL_RATE > 0 (new calls per second)")
    if mode != "fixed" and max_call_rate > 0:
        raise ConfigError(
            f"HOTLINE_MAX_CALL_RATE={max_call_rate:g} is a fixed rate, but HOTLINE_ADMISSION={mode}: "
            "unset one of them (a rate alone means fixed)"
        )
    raw = env.get("HOTLINE_ADMISSION_MAX_SETUPS") or "400"
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"HOTLINE_ADMISSION_MAX_SETUPS must be a whole number of calls >= 1, got {raw!r}")
    return mode, int(raw)


# Passwords from Asterisk samples, tutorials and our own docs: the first a scanner tries. ARI is full
# control over every call, so a guessable password is refused even on loopback.
WEAK_PASSWORDS = frozenset(
    {
        "asterisk",
        "hotline",
        "hotline12345",
        "12345",
        "secret",
        "password",
        "passw0rd",
        "changeme",
        "change-me",
        "admin",
        "administrator",
        "root",
        "ari",
        "ari-password",
        "test",
        "testing",
        "default",
        "guest",
        "letmein",
        "qwerty",
        "1234",
        "123456",
        "12345678",
        "123456789",
        "1234567890",
        "000000",
        "111111",
        "abc123",
    }
)
MIN_PASSWORD_LENGTH = 12  # `./hotlinectl setup` generates 24 base64 characters (fewer after dropping /+=)


def _refuse_weak_password(password: str, variable: str) -> None:
    """Refuse default/guessable ARI credentials at start-up (HOTLINE_TEST_MODE=1 skips this)."""
    if password.lower() in WEAK_PASSWORDS:
        raise ConfigError(
            f"{variable}: the ARI password is a well-known default — generate one with "
            "`./hotlinectl setup` (or set HOTLINE_TEST_MODE=1 in a test lab)"
        )
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ConfigError(
            f"{variable}: the ARI password has {len(password)} characters, at least "
            f"{MIN_PASSWORD_LENGTH} are required — generate one with `./hotlinectl setup`"
        )


def _read_secret(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found — the {what}; `./hotlinectl setup` creates it") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what}: {exc.strerror}") from None
