"""`hotline backup` and `hotline restore`: everything needed to bring a host back, in one file.

A backup is a tar.gz (0600: it holds the secrets) in /var/lib/hotline/backups:

    manifest.json        when, which version, what is inside
    calllog.sqlite3      an SQLite call log, copied with SQLite's online backup API (consistent while
                         the controller writes), or
    calllog.pgdump       a PostgreSQL one, `pg_dump --format=custom`
    etc/                 site.yaml, routes.yaml, secrets/, routes-history/ if there is one
    recordings/          citizens' messages, only with --recordings (they can be large)

restore puts each part back with install's owners and modes; Asterisk's configuration is not in a
backup because `hotline install` renders it again from the restored site file.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from ivr.calllog.sqlite import SqliteCallLog
from ivr.errors import ConfigError
from ivr.install import accounts
from ivr.install.layout import SERVICE_USER, Host
from ivr.site import config as site_config
from ivr.version import version

CALLLOG_SQLITE = "calllog.sqlite3"
CALLLOG_PG = "calllog.pgdump"


def _calllog(host: Host) -> str:
    """The call log's path inside the root (SQLite) or its URL, from the site file."""
    target = site_config.load(host.site_file).calllog if host.site_file.exists() else "/var/lib/hotline/calllog.sqlite3"
    return target if target.startswith("postgres") else str(host.path(target))


def backup(host: Host, *, out: Path | None = None, recordings: bool = False, reason: str = "", keep: int = 0) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    name = f"hotline-{stamp}{'-' + reason if reason else ''}.tar.gz"
    out = out or host.backups / name
    out.parent.mkdir(parents=True, exist_ok=True)
    target = _calllog(host)
    contents: list[str] = []
    with tempfile.TemporaryDirectory(prefix="hotline-backup-") as tmp:
        fd = os.open(out.with_name(out.name + ".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            if target.startswith("postgres"):
                dump = Path(tmp) / CALLLOG_PG
                done = subprocess.run(
                    ["pg_dump", "--format=custom", "--file", str(dump), target], capture_output=True, text=True
                )
                if done.returncode != 0:
                    raise ConfigError(f"pg_dump failed: {done.stderr.strip()}")
                tar.add(dump, CALLLOG_PG)
                contents.append(CALLLOG_PG)
            elif Path(target).exists():
                copy = Path(tmp) / CALLLOG_SQLITE
                SqliteCallLog(target).backup(copy)
                tar.add(copy, CALLLOG_SQLITE)
                contents.append(CALLLOG_SQLITE)
            for part in ("site.yaml", "routes.yaml", "secrets", "routes-history"):
                if (host.etc / part).exists():
                    tar.add(host.etc / part, f"etc/{part}")
                    contents.append(f"etc/{part}")
            if recordings:
                where = host.path(site_config.load(host.site_file).recordings)
                if where.exists():
                    tar.add(where, "recordings")
                    contents.append("recordings")
            manifest = json.dumps(
                {
                    "created": stamp,
                    "version": version(),
                    "calllog": target if target.startswith("postgres") else host.on_host(Path(target)),
                    "contents": contents,
                },
                indent=2,
            ).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size, info.mode, info.mtime = len(manifest), 0o600, int(dt.datetime.now().timestamp())
            tar.addfile(info, io.BytesIO(manifest))
        os.replace(out.with_name(out.name + ".tmp"), out)
    if keep:
        for old in sorted(out.parent.glob("hotline-*.tar.gz"))[:-keep]:
            old.unlink()
    return out


def restore(host: Host, archive: Path, *, calllog: bool = True) -> list[str]:
    """Put the backup's parts back; the lines say what was restored."""
    if host.root == Path("/") and _controller_running():
        # Its writer would keep writing into the call log being replaced, and its journal replay after.
        raise ConfigError("the controller is running: `systemctl stop hotline` first, then restore")
    done: list[str] = []
    service = accounts.user(host, SERVICE_USER)
    uid, gid = service if service else (0, 0)
    with tempfile.TemporaryDirectory(prefix="hotline-restore-") as tmp, tarfile.open(archive, "r:gz") as tar:
        tar.extractall(tmp, filter="data")
        unpacked = Path(tmp)
        manifest = json.loads((unpacked / "manifest.json").read_text(encoding="utf-8"))
        host.etc.mkdir(parents=True, exist_ok=True)
        for part in ("site.yaml", "routes.yaml", "secrets", "routes-history"):
            source = unpacked / "etc" / part
            if not source.exists():
                continue
            dest = host.etc / part
            if dest.is_dir():
                shutil.rmtree(dest)
            elif dest.exists():
                dest.unlink()
            if source.is_dir():
                shutil.copytree(source, dest)
            else:
                shutil.copyfile(source, dest)
            done.append(f"restored {host.on_host(dest)}")
        _modes(host, uid, gid)
        target = _calllog(host)
        if calllog and (unpacked / CALLLOG_PG).exists():
            if not target.startswith("postgres"):
                raise ConfigError(f"{archive}: holds a PostgreSQL dump but the site's call log is {target}")
            run = subprocess.run(
                ["pg_restore", "--clean", "--if-exists", "--no-owner", "--dbname", target, str(unpacked / CALLLOG_PG)],
                capture_output=True,
                text=True,
            )
            if run.returncode != 0:
                raise ConfigError(f"pg_restore failed: {run.stderr.strip()}")
            done.append("restored the call log (pg_restore)")
        elif calllog and (unpacked / CALLLOG_SQLITE).exists():
            dest = Path(target)
            dest.parent.mkdir(parents=True, exist_ok=True)
            staged = dest.with_name(dest.name + ".restoring")
            shutil.copyfile(unpacked / CALLLOG_SQLITE, staged)
            for stale in (dest.with_name(dest.name + "-wal"), dest.with_name(dest.name + "-shm")):
                stale.unlink(missing_ok=True)  # a WAL of the replaced file must not be replayed onto the backup
            os.replace(staged, dest)
            os.chown(dest, uid, gid)
            os.chmod(dest, 0o640)
            done.append(f"restored the call log {host.on_host(dest)} (from {manifest['created']})")
        if (unpacked / "recordings").exists():
            where = host.path(site_config.load(host.site_file).recordings)
            shutil.copytree(unpacked / "recordings", where, dirs_exist_ok=True)
            done.append(f"restored recordings into {host.on_host(where)}")
    return done


def _controller_running() -> bool:
    try:
        done = subprocess.run(["systemctl", "is-active", "--quiet", "hotline.service"], check=False, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False  # no systemd here: nothing to ask
    return done.returncode == 0


def _modes(host: Host, uid: int, gid: int) -> None:
    """install's owners and modes on what restore wrote into /etc/hotline."""
    for path, owner, mode in ((host.etc, 0, 0o750), (host.site_file, 0, 0o640), (host.routes_file, 0, 0o640)):
        if path.exists():
            os.chown(path, owner, gid)
            os.chmod(path, mode)
    if host.secrets.exists():
        os.chown(host.secrets, 0, gid)
        os.chmod(host.secrets, 0o750)
        for secret in host.secrets.iterdir():
            mine = not secret.name.startswith("seat-")  # the controller's; the seats' are root's
            os.chown(secret, uid if mine else 0, gid if mine else 0)
            os.chmod(secret, 0o600)
