"""Render one cluster node's Asterisk configuration from dialplan/, or the hotline's numbers.

    render_node.py node DIALPLAN_DIR OUT_DIR --name node1 --sip 5161 --http 8188 \
        --rtp 21000-21999 --proxy 127.0.0.1:5160 --aor departments=127.0.0.1:5180 ...
    render_node.py numbers DIALPLAN_DIR      # ^(12345|12310|...)$ for Kamailio

A node runs exactly the lab's dialplan: every file of dialplan/ is copied and only the settings a
second Asterisk on the same host must not share are changed (ports, directories, where its trunks
ring) — so an edit in dialplan/ reaches every node at the next `clusterctl start`. Every change
names the section and key it expects; if dialplan/ no longer has one (renamed, moved), rendering
fails with FILE:LINE instead of starting a node that quietly uses the lab's ports. A trunk aor
the cluster does not map is refused too: a new trunk in dialplan/ must not ring the lab's phones.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

SECTION = re.compile(r"^\[([^\]]+)\]")
SETTING = re.compile(r"^(\s*)([A-Za-z_][\w-]*)(\s*=>?\s*)([^;]*?)(\s*(;.*)?)$")
EXTEN = re.compile(r"^exten\s*=>\s*(\d+)\s*,")


class RenderError(Exception):
    pass


@dataclass
class Block:
    name: str
    start: int  # index of the header line (-1: lines before the first section)
    lines: list[int] = field(default_factory=list)  # indices of the setting lines


@dataclass
class ConfFile:
    """An Asterisk .conf file edited line by line; comments and layout are kept."""

    path: Path
    lines: list[str]

    @classmethod
    def read(cls, path: Path) -> ConfFile:
        return cls(path, path.read_text(encoding="utf-8").splitlines())

    def blocks(self) -> list[Block]:
        out = [Block("", -1)]
        for i, line in enumerate(self.lines):
            m = SECTION.match(line)
            if m:
                out.append(Block(m.group(1), i))
            elif SETTING.match(line):
                out[-1].lines.append(i)
        return out

    def _value(self, i: int, key: str) -> str | None:
        m = SETTING.match(self.lines[i])
        return m.group(4) if m and m.group(2) == key else None

    def section(self, name: str, kind: str | None = None) -> Block:
        """The one section [name] (of `type = kind` when given: pjsip has [x] aor and [x] endpoint)."""
        found = [
            b
            for b in self.blocks()
            if b.name == name and (kind is None or any(self._value(i, "type") == kind for i in b.lines))
        ]
        if len(found) != 1:
            what = f"[{name}]" + (f" with type = {kind}" if kind else "")
            raise RenderError(f"{self.path}: expected exactly one section {what}, found {len(found)}")
        return found[0]

    def set(self, name: str, key: str, value: str, why: str, kind: str | None = None) -> str:
        """Replace `key` in [name]; it must be there exactly once. Returns the old value."""
        block = self.section(name, kind)
        hits = [i for i in block.lines if self._value(i, key) is not None]
        if len(hits) != 1:
            raise RenderError(
                f"{self.path}:{block.start + 1}: [{name}] has {len(hits)} `{key}` settings,"
                f" the cluster profile changes exactly one"
            )
        i = hits[0]
        m = SETTING.match(self.lines[i])
        assert m is not None
        old = m.group(4)
        self.lines[i] = f"{m.group(1)}{key}{m.group(3)}{value} ; cluster: {why} (dialplan/ says {old})"
        return old

    def add(self, name: str, key: str, value: str, why: str) -> None:
        """Add `key` to [name]; it must not be set there already."""
        block = self.section(name)
        if any(self._value(i, key) is not None for i in block.lines):
            raise RenderError(f"{self.path}:{block.start + 1}: [{name}] already sets `{key}`")
        at = (block.lines[-1] if block.lines else block.start) + 1
        self.lines[at:at] = [f"; cluster: {why}", f"{key} = {value}"]

    def drop(self, name: str, why: str) -> bool:
        """Comment out every section [name] (pjsip: all its types); False if there is none."""
        blocks = self.blocks()
        hits = [n for n, b in enumerate(blocks) if b.name == name]
        for n in reversed(hits):
            start = blocks[n].start
            end = blocks[n + 1].start if n + 1 < len(blocks) else len(self.lines)
            self.lines[start:end] = [f"; cluster: {why}"] + [f";{line}" for line in self.lines[start:end]]
        return bool(hits)

    def write(self, path: Path, header: str) -> None:
        path.write_text(f"{header}\n" + "\n".join(self.lines) + "\n", encoding="utf-8")


def render_node(
    dialplan: Path, out: Path, name: str, sip: int, http: int, rtp: tuple[int, int], proxy: str, aors: dict[str, str]
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for conf in sorted(dialplan.glob("*.conf")):
        shutil.copyfile(conf, out / conf.name)
    header = f"; generated by cluster/clusterctl for {name} from dialplan/%s — edit dialplan/, not this file"

    ast = ConfFile.read(dialplan / "asterisk.conf")
    # Each node its own config, control socket, astdb, spool (recorded messages), logs and cache
    # inside the shared root; astdatadir is per node so the lab re-copying its prompts never
    # leaves a node's callers in silence.
    for key, path in (
        ("astetcdir", f"/etc/hotline-{name}"),
        ("astrundir", f"/run/hotline-{name}"),
        ("astdbdir", f"/var/lib/hotline-{name}"),
        ("astdatadir", f"/var/lib/hotline-{name}/data"),
        ("astspooldir", f"/var/spool/hotline-{name}"),
        ("astlogdir", f"/var/log/hotline-{name}"),
        ("astcachedir", f"/var/cache/hotline-{name}"),
    ):
        ast.set("directories", key, path, f"{name}'s own directory")
    # Channel ids become "<name>-<epoch>.<n>": every call-log row says which node took the call.
    ast.add("options", "systemname", name, "channel ids name the node that took the call")
    ast.write(out / "asterisk.conf", header % "asterisk.conf")

    pjsip = ConfFile.read(dialplan / "pjsip.conf")
    pjsip.set("transport-udp", "bind", f"127.0.0.1:{sip}", f"{name}'s SIP port")
    # Calls arrive from the dispatcher, never from the citizen: only its address is the carrier.
    pjsip.set("carrier-identify", "match", proxy, "the Kamailio dispatcher is this node's carrier")
    # Behind a proxy the Contact must stay the caller's: rewriting it to the source address would
    # point in-dialog requests (our BYE) at Kamailio itself instead of along the route set.
    pjsip.set("carrier", "rewrite_contact", "no", "calls come through a record-routing proxy", kind="endpoint")
    # The benchmark's baseline endpoint (dialplan/, bench/) has no place on a node: a node takes
    # calls from the dispatcher only.
    for section in ("bench", "bench-identify"):
        pjsip.drop(section, "the benchmark's endpoint is not part of a cluster node")
    mapped = set()
    for block in pjsip.blocks():
        contacts = [i for i in block.lines if pjsip._value(i, "contact") is not None]
        if not contacts:
            continue
        if block.name not in aors:
            raise RenderError(
                f"{dialplan / 'pjsip.conf'}:{block.start + 1}: aor [{block.name}] has a static contact"
                f" the cluster profile does not map (clusterctl PHONES); it would ring the lab's phone"
            )
        pjsip.set(block.name, "contact", f"sip:{aors[block.name]}", "the cluster's own phone", kind="aor")
        mapped.add(block.name)
    unknown = set(aors) - mapped
    if unknown:
        raise RenderError(f"{dialplan / 'pjsip.conf'}: no aor with a static contact named {sorted(unknown)}")
    pjsip.write(out / "pjsip.conf", header % "pjsip.conf")

    http_conf = ConfFile.read(dialplan / "http.conf")
    http_conf.set("general", "bindport", str(http), f"{name}'s ARI port")
    http_conf.write(out / "http.conf", header % "http.conf")

    rtp_conf = ConfFile.read(dialplan / "rtp.conf")
    rtp_conf.set("general", "rtpstart", str(rtp[0]), f"{name}'s media ports")
    rtp_conf.set("general", "rtpend", str(rtp[1]), f"{name}'s media ports")
    rtp_conf.write(out / "rtp.conf", header % "rtp.conf")


def hotline_numbers(dialplan: Path) -> list[str]:
    """The numbers [from-carrier] answers: exactly what a node accepts, so Kamailio lets in no more."""
    conf = ConfFile.read(dialplan / "extensions.conf")
    block = conf.section("from-carrier")
    numbers: list[str] = []
    for line in conf.lines[block.start + 1 :]:
        if SECTION.match(line):
            break
        m = EXTEN.match(line)
        if m and m.group(1) not in numbers:
            numbers.append(m.group(1))
    if not numbers:
        raise RenderError(f"{conf.path}:{block.start + 1}: [from-carrier] has no numeric extension")
    return numbers


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="render_node.py")
    sub = parser.add_subparsers(dest="cmd", required=True)
    node = sub.add_parser("node")
    node.add_argument("dialplan", type=Path)
    node.add_argument("out", type=Path)
    node.add_argument("--name", required=True)
    node.add_argument("--sip", type=int, required=True)
    node.add_argument("--http", type=int, required=True)
    node.add_argument("--rtp", required=True, help="START-END")
    node.add_argument("--proxy", required=True, help="IP:PORT the dispatcher sends from")
    node.add_argument("--aor", action="append", default=[], help="NAME=IP:PORT")
    nums = sub.add_parser("numbers")
    nums.add_argument("dialplan", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.cmd == "numbers":
            print("^(" + "|".join(hotline_numbers(args.dialplan)) + ")$")
            return 0
        start, _, end = args.rtp.partition("-")
        aors = dict(a.split("=", 1) for a in args.aor)
        render_node(args.dialplan, args.out, args.name, args.sip, args.http, (int(start), int(end)), args.proxy, aors)
    except RenderError as exc:
        print(f"render_node: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
