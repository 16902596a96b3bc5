"""`hotline install` and `hotline uninstall`: one host, idempotent, reversible.

install, in order (each step leaves what is already right alone):
  1. the `hotline` system user; Asterisk's own user must already exist (Asterisk 22 installed)
  2. /etc/hotline (site.yaml and routes.yaml copied from the source once, never overwritten),
     /var/lib/hotline, /var/log/hotline, with their owners and modes (layout.py)
  3. secrets generated once (0600): the ARI password, the callers' hash key, each seat's password
  4. the call log's schema brought up to date, after a backup when there is one already
  5. Asterisk's configuration rendered from dialplan/ + site.yaml, and the ring chains of routes.yaml
     (HOTLINE_DIAL_PATH=dialplan), into its config dir (the
     directory found there before the first install is kept aside and given back by uninstall),
     the prompts into Asterisk's sounds, the recordings directory
  6. systemd units and the logrotate file; on a live host: daemon-reload, units enabled

uninstall removes what install put outside the data (units, logrotate, Asterisk's rendered
configuration and prompts, hotline.env); site.yaml, routes.yaml, secrets, the call log, backups,
logs and the user stay unless `purge`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ivr.calllog.sqlite import SCHEMA_VERSION, SqliteCallLog
from ivr.errors import ConfigError
from ivr.install import accounts
from ivr.install.layout import SERVICE_USER, SOURCE, Host
from ivr.routing import routes
from ivr.site import config as site_config
from ivr.site.render import render
from ivr.site.secrets import ARI_PASSWORD, CALLER_KEY, Secrets

UNITS = (
    "hotline.service",
    "hotline-backup.service",
    "hotline-backup.timer",
    "hotline-purge.service",
    "hotline-purge.timer",
    "hotline-report-daily.service",
    "hotline-report-daily.timer",
    "hotline-report-monthly.service",
    "hotline-report-monthly.timer",
)
ENABLED = (
    "hotline.service",
    "hotline-backup.timer",
    "hotline-purge.timer",
    "hotline-report-daily.timer",
    "hotline-report-monthly.timer",
)
ASIDE_SUFFIX = ".before-hotline"


@dataclass
class Report:
    """What a run did, one line per change: printed by the CLI, and the test of idempotence."""

    done: list[str] = field(default_factory=list)

    def __call__(self, line: str) -> None:
        self.done.append(line)


def install(
    host: Host,
    *,
    source: Path = SOURCE,
    hotline_bin: Path | None = None,
    prompts: Path | None = None,
    live: bool | None = None,
    say: Callable[[str], None] | None = None,
) -> Report:
    report = Report()
    note = say or report
    hotline_bin = hotline_bin or Path(sys.executable).parent / "hotline"
    live = host.root == Path("/") and Path("/run/systemd/system").is_dir() if live is None else live

    uid, gid = accounts.ensure_service_user(host)
    root_gid = 0
    dirs = [
        (host.etc, 0, gid, 0o750),
        (host.secrets, 0, gid, 0o750),
        (host.state, uid, gid, 0o750),
        (host.backups, 0, 0, 0o700),
        (host.logs, uid, gid, 0o750),
    ]
    for path, owner, grp, mode in dirs:
        _dir(host, path, owner, grp, mode, note)
    for target, origin in (
        (host.site_file, source / "deploy" / "site.example.yaml"),
        (host.routes_file, source / "routes.yaml"),
    ):
        if not target.exists():
            shutil.copyfile(origin, target)
            note(f"created {host.on_host(target)} from {origin.name}: edit it")
        _own(target, 0, gid, 0o640)

    site = site_config.load(host.site_file)  # a RoutesError names FILE:LINE; nothing below has run yet
    table = routes.load(host.routes_file)  # likewise: its ring chains are rendered for Asterisk below
    ast = accounts.user(host, site.asterisk_user)
    if ast is None:
        raise ConfigError(
            f"{host.site_file}: no user '{site.asterisk_user}' on this host: is Asterisk 22 installed? "
            "(asterisk.user in the site file names the user it runs as)"
        )
    ast_uid, ast_gid = ast

    secrets = Secrets(host.secrets)
    for name, make in ((ARI_PASSWORD, "password"), (CALLER_KEY, "key")):
        if not (host.secrets / name).exists():
            note(f"generated {host.on_host(host.secrets / name)}")
        secrets.get(name, make)
        _own(host.secrets / name, uid, gid, 0o600)
    for seat in site.seats:
        path = host.secrets / f"seat-{seat.endpoint}.password"
        if not path.exists():
            note(f"generated {host.on_host(path)} (the softphone of {seat.endpoint} registers with it)")
        secrets.seat_password(seat.endpoint)
        _own(path, 0, root_gid, 0o600)

    calllog_target = site.calllog if site.calllog.startswith("postgres") else str(host.path(site.calllog))
    _write_env(host, site.calllog, note)
    _own(host.env_file, 0, gid, 0o640)
    _migrate_calllog(host, calllog_target, uid, gid, note)

    asterisk_etc = host.path(site.asterisk_config_dir)
    aside = asterisk_etc.with_name(asterisk_etc.name + ASIDE_SUFFIX)
    if asterisk_etc.exists() and not (asterisk_etc / ".hotline-rendered").exists() and not aside.exists():
        asterisk_etc.rename(aside)
        note(f"kept Asterisk's own configuration aside: {host.on_host(aside)} (uninstall puts it back)")
    rendered = render(site, source / "dialplan", asterisk_etc, secrets, table)
    (asterisk_etc / ".hotline-rendered").write_text("rendered by hotline install from " + str(host.site_file) + "\n")
    for name in (*rendered.files, ".hotline-rendered"):
        _own(asterisk_etc / name, 0, ast_gid, 0o640)
    _own(asterisk_etc, 0, ast_gid, 0o750)
    note(f"rendered Asterisk's configuration into {host.on_host(asterisk_etc)} ({len(rendered.files)} files)")

    sounds = host.path("/usr/share/asterisk/sounds/hotline")
    count = _install_prompts(host, source, prompts, sounds)
    note(f"installed {count} prompts into {host.on_host(sounds)}")
    recordings = host.path(site.recordings)
    _dir(host, recordings, ast_uid, ast_gid, 0o750, note)

    for unit in UNITS:
        text = (source / "deploy" / "systemd" / unit).read_text(encoding="utf-8").replace("@HOTLINE@", str(hotline_bin))
        _file(host, host.units / unit, text, 0o644, note)
    _file(host, host.logrotate, (source / "deploy" / "logrotate" / "hotline").read_text(encoding="utf-8"), 0o644, note)
    if not host.path("/etc/logrotate.d/asterisk").exists():  # Debian's package rotates messages.log itself
        text = (source / "deploy" / "logrotate" / "hotline-asterisk").read_text(encoding="utf-8")
        _file(host, host.path("/etc/logrotate.d/hotline-asterisk"), text, 0o644, note)

    host.manifest.write_text(
        json.dumps(
            {
                "asterisk_config_dir": str(site.asterisk_config_dir),
                "asterisk_aside": host.on_host(aside) if aside.exists() else None,
                "prompts": host.on_host(sounds),
                "units": list(UNITS),
                "source": str(source),
            },
            indent=2,
        )
        + "\n"
    )
    _own(host.manifest, 0, gid, 0o640)
    if live:
        _systemctl("daemon-reload")
        _systemctl("enable", *ENABLED)
        note("systemd: units enabled (start with: systemctl restart asterisk hotline)")
    return report


def uninstall(
    host: Host, *, purge: bool = False, live: bool | None = None, say: Callable[[str], None] | None = None
) -> Report:
    report = Report()
    note = say or report
    live = host.root == Path("/") and Path("/run/systemd/system").is_dir() if live is None else live
    try:
        manifest = json.loads(host.manifest.read_text(encoding="utf-8"))
    except FileNotFoundError:
        manifest = {}
    if live:
        _systemctl("disable", "--now", *ENABLED, check=False)
    for unit in manifest.get("units", UNITS):
        _remove(host.units / unit, host, note)
    if live:
        _systemctl("daemon-reload")
    _remove(host.logrotate, host, note)
    _remove(host.path("/etc/logrotate.d/hotline-asterisk"), host, note)
    if manifest.get("asterisk_config_dir"):
        asterisk_etc = host.path(manifest["asterisk_config_dir"])
        if (asterisk_etc / ".hotline-rendered").exists():
            _remove(asterisk_etc, host, note)
        if manifest.get("asterisk_aside") and host.path(manifest["asterisk_aside"]).exists():
            host.path(manifest["asterisk_aside"]).rename(asterisk_etc)
            note(f"gave back Asterisk's own configuration: {manifest['asterisk_config_dir']}")
    if manifest.get("prompts"):
        _remove(host.path(manifest["prompts"]), host, note)
    _remove(host.env_file, host, note)
    _remove(host.manifest, host, note)
    if purge:
        for path in (host.etc, host.state, host.logs):
            _remove(path, host, note)
        accounts.remove_service_user(host)
        note(f"removed the user {SERVICE_USER}")
    else:
        note(
            f"kept {host.on_host(host.etc)} (site, routes, secrets), {host.on_host(host.state)} (call log, backups), "
            f"{host.on_host(host.logs)} and the user {SERVICE_USER}: `hotline uninstall --purge` removes them"
        )
    return report


# -- steps ------------------------------------------------------------------------------------------


def _write_env(host: Host, calllog: str, note: Callable[[str], None]) -> None:
    text = (
        "# /etc/hotline/hotline.env: the controller's environment (ivr/settings.py), written by `hotline install`\n"
        "# from site.yaml -- change the site file and install again rather than this file.\n"
        "HOTLINE_STATE=/var/lib/hotline\n"
        f"HOTLINE_CALLLOG={calllog}\n"
        "HOTLINE_CALLER_KEY_FILE=/etc/hotline/secrets/caller-hash.key\n"
        "ARI_URL=http://127.0.0.1:8088/ari\n"
        "ARI_USER=hotline\n"
        "ARI_PASSWORD_FILE=/etc/hotline/secrets/ari-password\n"
        "HOTLINE_LOG_FORMAT=json\n"
    )
    _file(host, host.env_file, text, 0o640, note)


def _migrate_calllog(host: Host, target: str, uid: int, gid: int, note: Callable[[str], None]) -> None:
    """An upgrade changes the call log's schema only after a backup of it."""
    from ivr.calllog import open_calllog
    from ivr.install.backup import backup

    if target.startswith("postgres"):
        return  # migrated by the controller at start, like every node of a cluster; pg_dump is the DBA's
    path = Path(target)
    if path.exists() and SqliteCallLog(path).schema_version() < SCHEMA_VERSION:
        made = backup(host, reason="before-migration")
        note(f"backed up before migrating the call log: {host.on_host(made)}")
    log = open_calllog(path)
    version = log.migrate()
    log.close()
    for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if name.exists():
            _own(name, uid, gid, 0o640)
    note(f"call log {host.on_host(path)} at schema version {version}")


def _install_prompts(host: Host, source: Path, prompts: Path | None, sounds: Path) -> int:
    """The rendered prompts (`hotline prompts`) copied where Asterisk plays sound:hotline/NAME from."""
    if prompts is None:
        from ivr import prompts as p

        prompts = host.state / "sounds"
        table = routes.load(host.routes_file)
        texts = p.plan(table, p.load_static(source / "recordings" / "prompts.yaml"))
        p.render(texts, prompts, source / "recordings" / "voice")
        p.render_hold_music(prompts)
    wavs = sorted(prompts.glob("*.wav"))
    if not wavs:
        raise ConfigError(f"no prompts (*.wav) in {prompts}: render them with `hotline prompts --out {prompts}`")
    if sounds.exists():
        shutil.rmtree(sounds)
    sounds.mkdir(parents=True)
    for wav in wavs:
        shutil.copyfile(wav, sounds / wav.name)
        os.chmod(sounds / wav.name, 0o644)
    music = sounds / "moh"  # hold music, for musiconhold.conf's class "hotline"
    music.mkdir()
    for wav in sorted((prompts / "moh").glob("*.wav")):
        shutil.copyfile(wav, music / wav.name)
        os.chmod(music / wav.name, 0o644)
    os.chmod(music, 0o755)
    os.chmod(sounds, 0o755)
    return len(wavs)


def _dir(host: Host, path: Path, uid: int, gid: int, mode: int, note: Callable[[str], None]) -> None:
    if not path.is_dir():
        path.mkdir(parents=True)
        note(f"created {host.on_host(path)}")
    _own(path, uid, gid, mode)


def _file(host: Host, path: Path, text: str, mode: int, note: Callable[[str], None]) -> None:
    if path.exists() and path.read_text(encoding="utf-8") == text:
        os.chmod(path, mode)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    note(f"wrote {host.on_host(path)}")


def _own(path: Path, uid: int, gid: int, mode: int) -> None:
    os.chown(path, uid, gid)
    os.chmod(path, mode)


def _remove(path: Path, host: Host, note: Callable[[str], None]) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    else:
        return
    note(f"removed {host.on_host(path)}")


def _systemctl(*args: str, check: bool = True) -> None:
    done = subprocess.run(["systemctl", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise ConfigError(f"systemctl {' '.join(args)} failed: {done.stderr.strip()}")
