"""A scratch root to install into: a temporary directory holding nothing but a host's account files.

The account files are copied from this machine's /etc; Asterisk's user is added with
`useradd --root` when this machine has none, as a distribution's asterisk package would. The
service user is created by `hotline install` itself, with `useradd --root` as on a real host.
A stock /etc/asterisk stands for the one a distribution's package brings. Needs root (chown, useradd),
as CI runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import wave
from pathlib import Path

import pytest

from ivr.install.layout import Host

ACCOUNT_FILES = ("passwd", "group", "shadow", "gshadow", "login.defs")


@pytest.fixture
def host(tmp_path: Path) -> Host:
    if os.geteuid() != 0:
        pytest.fail("installing into a scratch root needs root (chown, useradd --root), as CI runs")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    for name in ACCOUNT_FILES:
        if Path("/etc", name).exists():
            shutil.copy2(Path("/etc", name), root / "etc" / name)
    if "\nasterisk:" not in "\n" + (root / "etc" / "passwd").read_text():
        subprocess.run(
            ["useradd", "--root", str(root), "--system", "--user-group", "--no-create-home", "asterisk"],
            check=True,
            capture_output=True,
        )
    (root / "etc" / "asterisk").mkdir()
    (root / "etc" / "asterisk" / "asterisk.conf").write_text("; the package's own\n[directories](!)\n")
    return Host(root)


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    """Two rendered prompts (the real ones take a while to synthesise and are tested elsewhere)."""
    out = tmp_path / "sounds"
    out.mkdir()
    for name in ("connecting", "sorry-fallback"):
        with wave.open(str(out / f"{name}.wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(b"\0\0" * 800)
    return out
