"""/etc/hotline/site.yaml parsed once into a typed, validated `Site` (deploy/site.example.yaml documents it).

Everything that differs between the lab and a city's host lives here: the public SIP address, the
carrier's SBCs, the trunks' addresses and transports, the seats' softphones, codecs, where the call
log and the recordings go, and where Asterisk keeps its configuration and modules. dialplan/ stays
the same everywhere; `hotline site render` combines the two.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from ivr.errors import RoutesError
from ivr.routing.routes import ENDPOINT_PATTERN
from ivr.routing.yamlsrc import Node, Source

DEFAULT_PATH = Path("/etc/hotline/site.yaml")
TRANSPORTS = ("udp", "tcp", "tls")
# What Asterisk 22's codec modules call the codecs a carrier trunk plausibly offers.
CODECS = ("alaw", "ulaw", "g722", "g729", "opus", "gsm")
HOST_PATTERN = r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?"
TRUNKS = ("departments", "operators", "partners")  # the endpoints routes.yaml's trunks name


@dataclass(frozen=True)
class Peer:
    """A SIP trunk the controller dials out on: where it is and how to reach it."""

    name: str
    host: str
    port: int
    transport: str


@dataclass(frozen=True)
class SeatPhone:
    """An operator seat's softphone: registers from `address` with a generated password."""

    endpoint: str
    address: str  # an address or network (ipaddress notation): the desk's LAN address
    transport: str


@dataclass(frozen=True)
class Site:
    source: str
    bind: str
    udp_port: int
    tcp_port: int
    tls_port: int
    tls_cert: str | None
    tls_key: str | None
    external_address: str | None
    codecs: tuple[str, ...]
    carrier_sbcs: tuple[str, ...]
    carrier_transport: str
    # Where callbacks and 回访 are dialled (PJSIP/<number>@carrier): the same `carrier` endpoint the
    # SBCs call in on, so one trunk, one transport and one set of hardening options both ways.
    carrier_outbound: Peer
    trunks: tuple[Peer, ...]
    seats: tuple[SeatPhone, ...]
    calllog: str
    recordings: Path
    asterisk_config_dir: Path
    asterisk_modules_dir: Path
    asterisk_user: str
    asterisk_run_dir: Path = Path("/run/asterisk")

    @property
    def transports(self) -> tuple[str, ...]:
        """The transports something uses, in a fixed order: each gets one listener."""
        used = {self.carrier_transport, *(t.transport for t in self.trunks), *(s.transport for s in self.seats)}
        return tuple(t for t in TRANSPORTS if t in used)


def load(path: str | Path) -> Site:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RoutesError.single(str(path), 1, "file not found") from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise RoutesError.single(str(path), line, f"not UTF-8 text: {exc.reason}") from None
    except OSError as exc:
        raise RoutesError.single(str(path), 1, f"cannot read: {exc.strerror}") from None
    return parse(text, str(path))


def parse(text: str, filename: str = "site.yaml") -> Site:
    src = Source(filename, text)
    root = src.root()
    top = (
        root.mapping(
            allowed={"version", "sip", "carrier", "trunks", "seats", "calllog", "recordings", "asterisk"},
            required={"version", "sip", "carrier", "trunks"},
        )
        or {}
    )
    if "version" in top:
        top["version"].integer(1, 1)

    sip = top["sip"].mapping(allowed={"bind", "ports", "tls", "external_address", "codecs"}, required={"bind"}) or {}
    bind = _address(sip["bind"]) if "bind" in sip else None
    ports = sip["ports"].mapping(allowed=set(TRANSPORTS)) or {} if "ports" in sip else {}
    port = {
        t: ports[t].integer(1, 65535) if t in ports else d for t, d in (("udp", 5060), ("tcp", 5060), ("tls", 5061))
    }
    tls = sip["tls"].mapping(allowed={"cert", "key"}, required={"cert", "key"}) or {} if "tls" in sip else {}
    cert = _abs_path(tls["cert"]) if "cert" in tls else None
    key = _abs_path(tls["key"]) if "key" in tls else None
    external = _address(sip["external_address"]) if "external_address" in sip else None
    codecs: list[str] = []
    for node in sip["codecs"].sequence() or [] if "codecs" in sip else []:
        codec = node.choice(CODECS)
        if codec in codecs:
            node.problem(f"{node.name}: '{codec}' is listed twice")
        elif codec:
            codecs.append(codec)
    if "codecs" in sip and not codecs and not src.problems:
        sip["codecs"].problem("sip.codecs must list at least one codec")

    carrier_keys = {"sbc", "transport", "outbound"}
    carrier = (
        top["carrier"].mapping(allowed=carrier_keys, required={"sbc", "outbound"}) or {} if "carrier" in top else {}
    )
    sbcs: list[str] = []
    for node in carrier["sbc"].sequence() or [] if "sbc" in carrier else []:
        network = _network(node)
        if network:
            sbcs.append(network)
    if "sbc" in carrier and not sbcs and not src.problems:
        carrier["sbc"].problem("carrier.sbc must list the carrier's SBC addresses: nobody else may call in")
    carrier_transport = carrier["transport"].choice(TRANSPORTS) if "transport" in carrier else "udp"
    outbound: Peer | None = None
    if "outbound" in carrier:
        # No transport of its own: the carrier endpoint has one, carrier.transport.
        fields = carrier["outbound"].mapping(allowed={"host", "port"}, required={"host"}) or {}
        host = fields["host"].string(HOST_PATTERN, "a host name or address") if "host" in fields else None
        default_port = 5061 if carrier_transport == "tls" else 5060
        out_port = fields["port"].integer(1, 65535) if "port" in fields else default_port
        if host and out_port and carrier_transport:
            outbound = Peer("carrier", host, out_port, carrier_transport)

    trunks: list[Peer] = []
    given = top["trunks"].mapping(allowed=set(TRUNKS), required=set(TRUNKS)) or {} if "trunks" in top else {}
    for name, node in given.items():
        fields = node.mapping(allowed={"host", "port", "transport"}, required={"host"}) or {}
        host = fields["host"].string(HOST_PATTERN, "a host name or address") if "host" in fields else None
        transport = fields["transport"].choice(TRANSPORTS) if "transport" in fields else "udp"
        default_port = 5061 if transport == "tls" else 5060
        trunk_port = fields["port"].integer(1, 65535) if "port" in fields else default_port
        if host and transport and trunk_port:
            trunks.append(Peer(name, host, trunk_port, transport))

    seats: list[SeatPhone] = []
    for node in top["seats"].sequence() or [] if "seats" in top else []:
        fields = node.mapping(allowed={"endpoint", "address", "transport"}, required={"endpoint", "address"}) or {}
        endpoint = (
            fields["endpoint"].string(ENDPOINT_PATTERN, "a PJSIP endpoint name") if "endpoint" in fields else None
        )
        if endpoint in TRUNKS:
            fields["endpoint"].problem(f"{fields['endpoint'].name}: '{endpoint}' is a trunk's name")
            endpoint = None
        elif endpoint and any(s.endpoint == endpoint for s in seats):
            fields["endpoint"].problem(f"{fields['endpoint'].name}: seat '{endpoint}' is listed twice")
            endpoint = None
        address = _network(fields["address"]) if "address" in fields else None
        transport = fields["transport"].choice(TRANSPORTS) if "transport" in fields else "udp"
        if endpoint and address and transport:
            seats.append(SeatPhone(endpoint, address, transport))

    calllog = "/var/lib/hotline/calllog.sqlite3"
    if "calllog" in top:
        value = top["calllog"].string()
        if value and not (value.startswith(("postgresql://", "postgres://")) or value.startswith("/")):
            top["calllog"].problem("calllog must be an absolute path (SQLite) or a postgresql:// URL")
        elif value:
            calllog = value
    recordings = _abs_path(top["recordings"]) if "recordings" in top else "/var/spool/asterisk/recording"

    ast_keys = {"config_dir", "modules_dir", "run_dir", "user"}
    ast = top["asterisk"].mapping(allowed=ast_keys) or {} if "asterisk" in top else {}
    config_dir = _abs_path(ast["config_dir"]) if "config_dir" in ast else "/etc/asterisk"
    modules_dir = (
        _abs_path(ast["modules_dir"]) if "modules_dir" in ast else "/usr/lib/x86_64-linux-gnu/asterisk/modules"
    )
    run_dir = _abs_path(ast["run_dir"]) if "run_dir" in ast else "/run/asterisk"
    ast_user = ast["user"].string(r"[a-z_][a-z0-9_-]{0,31}", "a user name") if "user" in ast else "asterisk"

    uses_tls = (
        carrier_transport == "tls"
        or any(p.transport == "tls" for p in trunks)
        or any(s.transport == "tls" for s in seats)
    )
    if uses_tls and not tls and "sip" in top:
        top["sip"].problem("sip.tls (cert, key) is required: a trunk, a seat or the carrier uses transport tls")
    src.raise_if_problems()
    assert bind and carrier_transport and outbound and recordings and config_dir and modules_dir and ast_user
    return Site(
        source=filename,
        bind=bind,
        udp_port=port["udp"] or 5060,
        tcp_port=port["tcp"] or 5060,
        tls_port=port["tls"] or 5061,
        tls_cert=cert,
        tls_key=key,
        external_address=external,
        codecs=tuple(codecs) or ("alaw", "ulaw"),
        carrier_sbcs=tuple(sbcs),
        carrier_transport=carrier_transport,
        carrier_outbound=outbound,
        trunks=tuple(sorted(trunks, key=lambda p: TRUNKS.index(p.name))),
        seats=tuple(seats),
        calllog=calllog,
        recordings=Path(recordings),
        asterisk_config_dir=Path(config_dir),
        asterisk_modules_dir=Path(modules_dir),
        asterisk_user=ast_user,
        asterisk_run_dir=Path(run_dir or "/run/asterisk"),
    )


def _address(node: Node) -> str | None:
    value = node.string()
    if value is None:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        node.problem(f"{node.name} '{value}' is not an IP address")
        return None


def _network(node: Node) -> str | None:
    """An address or a network (198.51.100.0/28): what a PJSIP identify `match` takes."""
    value = node.string()
    if value is None:
        return None
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError:
        node.problem(f"{node.name} '{value}' is not an IP address or network (host bits set?)")
        return None
    if network.prefixlen < (16 if network.version == 4 else 48):
        node.problem(f"{node.name} '{value}' is wider than a /16: anyone in it could call in")
        return None
    return value


def _abs_path(node: Node) -> str | None:
    value = node.string()
    if value is not None and not value.startswith("/"):
        node.problem(f"{node.name} must be an absolute path, got '{value}'")
        return None
    return value
