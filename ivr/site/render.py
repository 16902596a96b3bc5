"""Asterisk's configuration for one host, rendered from dialplan/ and the site file.

dialplan/ is the lab's configuration and the single source of every policy in it: the hardening of
each endpoint, the carrier's contexts, the modules left out, loopback-only ARI, the security log.
Rendering keeps all of that and changes only what is particular to a host:

- pjsip.conf is written anew: the site's transports, the carrier identified by its SBC addresses
  and dialled (callbacks, 回访) at its outbound address, the three trunks at the site's addresses,
  the seats as softphones that register (each with a generated password, allowed only from its
  desk's address). Every endpoint takes its options from its model in dialplan/pjsip.conf
  ([carrier], [departments], [operator-1]), so a hardening option added there reaches production.
- extensions.conf loses the lab-only benchmark context and gains [from-seat] (a seat's own calls
  go nowhere).
- asterisk.conf points at the host's directories; ari_users.conf holds the generated ARI password
  (ari_users_conf says why in plain).
- hotline-chains.conf holds the ring chains of routes.yaml (HOTLINE_DIAL_PATH=dialplan), where
  extensions.conf #tryincludes it, as the lab renders it (ivr.routing.dialplan.chain_dialplan).
- Every other file is copied as it is.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ivr.errors import ConfigError
from ivr.routing.dialplan import CHAIN_FILE, Section, chain_dialplan, read_conf
from ivr.routing.routes import RouteTable
from ivr.site.config import Peer, Site
from ivr.site.secrets import Secrets

ARI_USER = "hotline"
LAB_ONLY_SECTIONS = {"extensions.conf": ("bench-baseline",)}  # the benchmark's baseline endpoint's context
SEAT_CONTEXT = "from-seat"
# Endpoint models in dialplan/pjsip.conf: a site's endpoint of each kind takes these options.
CARRIER_MODEL, TRUNK_MODEL, SEAT_MODEL = "carrier", "departments", "operator-1"
SITE_KEYS = ("type", "transport", "allow", "disallow", "aors", "context", "auth")  # set by the render, not copied


@dataclass(frozen=True)
class Rendered:
    out: Path
    files: tuple[str, ...]


def render(site: Site, dialplan: Path, out: Path, secrets: Secrets, routes: RouteTable) -> Rendered:
    """Write the configuration into `out` (created 0750; files 0640: they hold the seats' passwords).

    `routes`: the table whose ring chains Asterisk dials on the dialplan path. A route edited after this
    render gets a chain name the loaded dialplan lacks, and its calls ring over ARI until the next one."""
    try:
        chains = chain_dialplan(routes)
    except ValueError as exc:
        raise ConfigError(f"{routes.source}: {exc}") from None
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    for source in sorted(dialplan.glob("*.conf")):
        text = source.read_text(encoding="utf-8")
        name = source.name
        if name == "pjsip.conf":
            text = _pjsip(site, source, secrets)
        elif name == "asterisk.conf":
            text = _set_options(
                text,
                "directories",
                {
                    "astetcdir": str(site.asterisk_config_dir),
                    "astmoddir": str(site.asterisk_modules_dir),
                    "astrundir": str(site.asterisk_run_dir),
                },
            )
        for section in LAB_ONLY_SECTIONS.get(name, ()):
            text = _drop_section(text, section)
        if name == "extensions.conf":
            text += (
                f"\n; A seat's softphone registers and answers; calls it makes itself go nowhere.\n"
                f"[{SEAT_CONTEXT}]\nexten => s,1,Hangup(21)\n"
            )
        written[name] = _header(name, site) + text
    written["ari_users.conf"] = ari_users_conf(
        secrets.ari_password(),
        f"rendered by `hotline site render`: the ARI user of the controller (its password: "
        f"{secrets.directory}/ari-password)",
    )
    written[CHAIN_FILE] = chains
    for name, text in written.items():
        _write(out / name, text)
    return Rendered(out, tuple(sorted(written)))


# How Asterisk checks the controller's password, decided here once for the lab, every cluster node
# and `hotline site render` (so the sizing figures of BENCHMARKS.md transfer). Plain, because
# Asterisk checks it on every ARI request — a SHA-512 crypt check per request cost B a quarter of its
# calls/s on a quiet box (65 calls/s with crypt, 85 with plain; Asterisk ~18 vs ~13.6 ms of CPU per
# call, issue 21) — and a hash protects nothing here: ARI listens on loopback only (http.conf
# bindaddr, pinned by tests/unit/test_security_config.py); the password is random, used nowhere
# else, and its plaintext already sits in the controller's 0600 secrets file; and whoever can read
# ari_users.conf (root, or Asterisk's group: the file is 0640 root:asterisk) already controls every
# call through Asterisk itself.
ARI_PASSWORD_FORMAT = "plain"


def ari_users_conf(password: str, origin: str) -> str:
    """ari_users.conf for the controller's ARI user, readable by Asterisk's group only (0640)."""
    if any(c in password for c in ";\n\r") or password != password.strip():
        # ';' starts a comment in Asterisk's config files: the password would be cut short there.
        raise ValueError(f"ARI password ({origin}): it must not hold ';', line breaks or surrounding spaces")
    return (
        f"; {origin}\n"
        f"[{ARI_USER}]\ntype = user\nread_only = no\n"
        f"password_format = {ARI_PASSWORD_FORMAT}\npassword = {password}\n"
    )


def _header(name: str, site: Site) -> str:
    return (
        f"; rendered by `hotline site render` from dialplan/{name} and {site.source} -- do not edit here:\n"
        f"; edit the site file (or dialplan/ in the hotline's source) and render again.\n"
    )


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


# -- pjsip.conf -------------------------------------------------------------------------------------


def _pjsip(site: Site, source: Path, secrets: Secrets) -> str:
    sections = {s.name: s for s in read_conf(source) if s.get("type") in ("global", "endpoint")}
    out = [_section("global", _copied(sections["global"], keep_type=True))]
    for transport in site.transports:
        port = {"udp": site.udp_port, "tcp": site.tcp_port, "tls": site.tls_port}[transport]
        host = f"[{site.bind}]" if ":" in site.bind else site.bind
        options = [("type", "transport"), ("protocol", transport), ("bind", f"{host}:{port}")]
        if transport == "tls":
            options += [("cert_file", site.tls_cert or ""), ("priv_key_file", site.tls_key or "")]
            options += [("method", "tlsv1_2")]
        if site.external_address:
            options += [
                ("external_signaling_address", site.external_address),
                ("external_media_address", site.external_address),
            ]
        out.append(_section(f"transport-{transport}", options))
    allow = ",".join(site.codecs)

    def endpoint(model: str, transport: str, extra: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [
            ("type", "endpoint"),
            ("transport", f"transport-{transport}"),
            *extra,
            ("disallow", "all"),
            ("allow", allow),
            *_copied(sections[model]),
        ]

    # One endpoint both ways: calls in are matched by the SBCs' addresses (identify), calls out go to
    # the aor's contact. The outbound address is deliberately not added to identify: only the SBCs call in.
    out.append(_aor(site.carrier_outbound))
    carrier_extra = [("aors", "carrier"), ("context", "from-carrier")]
    out.append(_section("carrier", endpoint(CARRIER_MODEL, site.carrier_transport, carrier_extra)))
    out.append(
        _section(
            "carrier-identify",
            [("type", "identify"), ("endpoint", "carrier"), *(("match", a) for a in site.carrier_sbcs)],
        )
    )
    for trunk in site.trunks:
        out.append(_aor(trunk))
        extra = [("aors", trunk.name), ("context", "from-trunk")]
        out.append(_section(trunk.name, endpoint(TRUNK_MODEL, trunk.transport, extra)))
    for seat in site.seats:
        auth = f"{seat.endpoint}-auth"
        out.append(
            _section(
                auth,
                [
                    ("type", "auth"),
                    ("auth_type", "userpass"),
                    ("username", seat.endpoint),
                    ("password", secrets.seat_password(seat.endpoint)),
                ],
            )
        )
        # One registered phone per seat; a new registration replaces the old (a restarted softphone).
        aor = [("type", "aor"), ("max_contacts", "1"), ("remove_existing", "yes"), ("qualify_frequency", "30")]
        out.append(_section(seat.endpoint, aor))
        extra = [("aors", seat.endpoint), ("auth", auth), ("context", SEAT_CONTEXT)]
        out.append(_section(seat.endpoint, endpoint(SEAT_MODEL, seat.transport, extra)))
        identify = [("type", "identify"), ("endpoint", seat.endpoint), ("match", seat.address)]
        out.append(_section(f"{seat.endpoint}-identify", identify))
    return "\n".join(out)


def _aor(peer: Peer) -> str:
    host = f"[{peer.host}]" if ":" in peer.host else peer.host
    # `;` starts a comment in Asterisk's files: the URI parameter's must be escaped.
    contact = f"sip:{host}:{peer.port}" + ("" if peer.transport == "udp" else f"\\;transport={peer.transport}")
    return _section(peer.name, [("type", "aor"), ("contact", contact), ("qualify_frequency", "30")])


def _copied(section: Section, keep_type: bool = False) -> list[tuple[str, str]]:
    skip = () if keep_type else SITE_KEYS
    return [(o.key, o.value) for o in section.options if o.key not in skip]


def _section(name: str, options: Iterable[tuple[str, str]]) -> str:
    return f"[{name}]\n" + "".join(f"{key} = {value}\n" for key, value in options)


# -- text edits of copied files ---------------------------------------------------------------------


def _chunks(text: str) -> list[tuple[str | None, list[str]]]:
    """The file cut before each section, a section's chunk starting with the comments right above it.

    A directive (#include, #tryinclude) after a section is no part of it: it gets a chunk of its own
    (section None), so dropping the section above keeps it (extensions.conf's hotline-chains.conf)."""
    lines = text.splitlines(keepends=True)
    starts: list[tuple[int, str | None]] = []
    for i, line in enumerate(lines):
        if line.startswith("[") or (line.startswith("#") and starts):
            first = i
            while first > 0 and lines[first - 1].startswith(";"):
                first -= 1
            starts.append((first, line[1:].split("]", 1)[0].strip() if line.startswith("[") else None))
    chunks: list[tuple[str | None, list[str]]] = [(None, lines[: starts[0][0]] if starts else lines)]
    for n, (first, name) in enumerate(starts):
        end = starts[n + 1][0] if n + 1 < len(starts) else len(lines)
        chunks.append((name, lines[first:end]))
    return chunks


def _drop_section(text: str, name: str) -> str:
    return "".join("".join(lines) for section, lines in _chunks(text) if section != name)


def _set_options(text: str, section: str, values: dict[str, str]) -> str:
    """Replace the values of `key => value` / `key = value` lines of one section."""
    out = []
    for name, lines in _chunks(text):
        for line in lines:
            key, sep, _ = line.partition("=")
            key = key.strip()
            if name == section and sep and key in values and not line.startswith(";"):
                arrow = "=>" if "=>" in line else "="
                line = f"{key} {arrow} {values[key]}\n"
            out.append(line)
    return "".join(out)
