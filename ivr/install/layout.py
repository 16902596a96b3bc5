"""Where an installed hotline keeps what, under a root ("/" on the host itself).

/etc/hotline/                 root:hotline 0750   site.yaml, routes.yaml, hotline.env (0640)
/etc/hotline/secrets/         root:hotline 0750   ari-password, caller-hash.key (hotline, 0600),
                                                  seat-*.password (root, 0600)
/var/lib/hotline/             hotline 0750        call log, rendered prompts, backups/ (0700)
/var/log/hotline/             hotline 0750        files the controller writes outside journald
<asterisk config dir>/        root:asterisk 0750  rendered by `hotline site render` (files 0640)
/etc/systemd/system/hotline*  root 0644           the units (deploy/systemd)
/etc/logrotate.d/hotline      root 0644           (deploy/logrotate)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import ivr

SOURCE = Path(ivr.__file__).resolve().parents[1]  # the checkout: dialplan/, deploy/, routes.yaml, recordings/
SERVICE_USER = "hotline"


@dataclass(frozen=True)
class Host:
    root: Path

    def path(self, absolute: str | Path) -> Path:
        """`absolute` (a path on the installed host) inside this root, symlinks followed within the root.

        A scratch root may hold absolute links (/usr/share/asterisk/sounds -> /var/lib/...): followed
        naively they would lead out of the root onto this machine.
        """
        parts = Path(absolute).parts[1:]
        here = self.root
        for part in parts:
            here = here / part
            for _ in range(16):
                if not here.is_symlink():
                    break
                target = Path(here.readlink())
                here = self.root / target.relative_to("/") if target.is_absolute() else here.parent / target
        return here

    @property
    def etc(self) -> Path:
        return self.path("/etc/hotline")

    @property
    def secrets(self) -> Path:
        return self.etc / "secrets"

    @property
    def site_file(self) -> Path:
        return self.etc / "site.yaml"

    @property
    def routes_file(self) -> Path:
        return self.etc / "routes.yaml"

    @property
    def env_file(self) -> Path:
        return self.etc / "hotline.env"

    @property
    def state(self) -> Path:
        return self.path("/var/lib/hotline")

    @property
    def logs(self) -> Path:
        return self.path("/var/log/hotline")

    @property
    def backups(self) -> Path:
        return self.state / "backups"

    @property
    def units(self) -> Path:
        return self.path("/etc/systemd/system")

    @property
    def logrotate(self) -> Path:
        return self.path("/etc/logrotate.d/hotline")

    @property
    def manifest(self) -> Path:
        return self.state / "installed.json"

    def on_host(self, path: Path) -> str:
        """`path` inside this root as the installed host names it."""
        return "/" + str(path.relative_to(self.root)) if path != self.root else "/"
