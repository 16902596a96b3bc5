"""Users and groups of the installed host, read from its own /etc/passwd and /etc/group.

Not the pwd module: under --root the names must resolve in the root's files, not this machine's.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from ivr.errors import ConfigError
from ivr.install.layout import SERVICE_USER, Host


def _ids(table: Path, name: str) -> tuple[int, int] | None:
    try:
        lines = table.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return None
    for line in lines:
        fields = line.split(":")
        if fields[0] == name and len(fields) >= 3:
            return int(fields[2]), int(fields[3]) if len(fields) > 3 and fields[3] else int(fields[2])
    return None


def user(host: Host, name: str) -> tuple[int, int] | None:
    """(uid, primary gid) of `name` on the host, or None."""
    return _ids(host.path("/etc/passwd"), name)


def group(host: Host, name: str) -> int | None:
    found = _ids(host.path("/etc/group"), name)
    return found[0] if found else None


def ensure_service_user(host: Host) -> tuple[int, int]:
    """The `hotline` system user and group, created if missing (useradd --root for a scratch root)."""
    found = user(host, SERVICE_USER)
    if found is not None:
        return found
    if not host.path("/etc/passwd").exists():
        raise ConfigError(f"{host.path('/etc/passwd')} does not exist: --root must hold the host's /etc")
    argv = ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/var/lib/hotline"]
    argv += ["--shell", "/usr/sbin/nologin", "--comment", "12345 hotline controller", SERVICE_USER]
    if host.root != Path("/"):
        argv[1:1] = ["--root", str(host.root)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    found = user(host, SERVICE_USER)
    if done.returncode != 0 or found is None:
        raise ConfigError(f"useradd {SERVICE_USER} failed: {done.stderr.strip() or done.returncode}")
    return found


def remove_service_user(host: Host) -> None:
    if user(host, SERVICE_USER) is None:
        return
    argv = ["userdel", SERVICE_USER]
    if host.root != Path("/"):
        argv[1:1] = ["--root", str(host.root)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ConfigError(f"userdel {SERVICE_USER} failed: {done.stderr.strip() or done.returncode}")
