"""The hotline's version: the package's, and the commit it was installed from when there is one."""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path


def version() -> str:
    try:
        release = metadata.version("hotline12345")
    except metadata.PackageNotFoundError:
        release = "unknown"
    source = Path(__file__).resolve().parents[1]
    try:
        done = subprocess.run(
            ["git", "-C", str(source), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return release
    commit = done.stdout.strip() if done.returncode == 0 else ""
    return f"{release} ({commit})" if commit else release
