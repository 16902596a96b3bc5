"""The `recording:` section of routes.yaml, parsed once into a typed `RecordingPolicy`.

    recording:
      record: on                    # every answered call unless said otherwise below
      modes: {interconnect: off}    # per route mode (merge, transfer, interconnect) or `operators`
      units: {市公安局: off}         # per unit (a route's `unit`): wins over its mode
      format: wav                   # two channels: 1 = the citizen, 2 = the other side
      directory: /var/spool/asterisk/monitor/hotline   # as Asterisk sees it (it writes the files)
      keep_days: 180                # call recordings
      keep_message_days: 90         # messages (留言)

Without the section nothing is recorded (and no notice is played): recording is a decision a
centre makes and announces, never a default it discovers.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from ivr.routing.yamlsrc import Node

FORMATS = ("wav",)
OPERATORS = "operators"  # the operators' calls, in `modes:` beside the route modes
DEFAULT_DIRECTORY = "/var/spool/asterisk/monitor/hotline"
KEEP_RECORDINGS_DAYS = 180
KEEP_MESSAGES_DAYS = 90


@dataclass(frozen=True)
class RecordingPolicy:
    """Which answered calls are recorded, into which directory, kept how long."""

    record: bool = False
    modes: Mapping[str, bool] = field(default_factory=dict)
    units: Mapping[str, bool] = field(default_factory=dict)
    format: str = "wav"
    directory: str = DEFAULT_DIRECTORY
    keep_days: int = KEEP_RECORDINGS_DAYS
    keep_message_days: int = KEEP_MESSAGES_DAYS
    line: int = field(default=0, compare=False)  # where `recording:` is in routes.yaml (0: not there)

    def records(self, mode: str, unit: str = "") -> bool:
        """Is a call answered on a route of `mode` (or `operators`) for `unit` recorded?"""
        if unit in self.units:
            return self.units[unit]
        return self.modes.get(mode, self.record)

    @property
    def records_anything(self) -> bool:
        return self.record or any(self.modes.values()) or any(self.units.values())


def parse_recording(node: Node, modes: Collection[str], units: Collection[str]) -> RecordingPolicy:
    """The section at `node`; problems are reported on the node (FILE:LINE) like the rest of the file."""
    fields = (
        node.mapping(allowed={"record", "modes", "units", "format", "directory", "keep_days", "keep_message_days"})
        or {}
    )
    policy = RecordingPolicy(record=True, line=node.line)
    record = _switch(fields["record"]) if "record" in fields else True
    by_mode: dict[str, bool] = {}
    for key, value in fields["modes"].items() if "modes" in fields else ():
        if key not in modes and key != OPERATORS:
            value.problem(f"recording.modes: unknown mode '{key}' (one of: {', '.join(sorted([*modes, OPERATORS]))})")
            continue
        if (on := _switch(value)) is not None:
            by_mode[key] = on
    by_unit: dict[str, bool] = {}
    for key, value in fields["units"].items() if "units" in fields else ():
        if units and key not in units:
            value.problem(f"recording.units: '{key}' is not the unit of any route")
            continue
        if (on := _switch(value)) is not None:
            by_unit[key] = on
    fmt = (fields["format"].choice(FORMATS) if "format" in fields else None) or policy.format
    directory = policy.directory
    if "directory" in fields:
        directory = fields["directory"].string(r"/[^\s;,()$]*", "an absolute path without spaces") or directory
    keep = (fields["keep_days"].integer(1, 3650) if "keep_days" in fields else None) or policy.keep_days
    keep_messages = (
        fields["keep_message_days"].integer(1, 3650) if "keep_message_days" in fields else None
    ) or policy.keep_message_days
    return RecordingPolicy(
        record=bool(record),
        modes=by_mode,
        units=by_unit,
        format=fmt,
        directory=directory.rstrip("/") or "/",
        keep_days=keep,
        keep_message_days=keep_messages,
        line=node.line,
    )


def _switch(node: Node) -> bool | None:
    value = node.choice(("on", "off"))
    return None if value is None else value == "on"
