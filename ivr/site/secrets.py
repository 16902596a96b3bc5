"""The host's generated secrets, one file each in /etc/hotline/secrets (0700 dir, 0600 files).

Generated the first time something asks for them and never changed after: Asterisk's hashed copy
and the controller's plaintext must keep matching across re-renders and re-installs.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

ARI_PASSWORD = "ari-password"
CALLER_KEY = "caller-hash.key"


class Secrets:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def get(self, name: str, make: str = "password") -> str:
        """The secret `name`, generated now if it does not exist yet."""
        path = self.directory / name
        if path.exists():
            return path.read_text(encoding="utf-8").strip()
        value = (
            secrets.token_hex(32) if make == "key" else secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")
        )
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # O_EXCL + 0600 from the first byte: never a moment where the file is readable by others.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(value + "\n")
        return value

    def ari_password(self) -> str:
        return self.get(ARI_PASSWORD)

    def caller_key(self) -> str:
        return self.get(CALLER_KEY, make="key")

    def seat_password(self, endpoint: str) -> str:
        return self.get(f"seat-{endpoint}.password")
