"""Typed views of the ARI events the call flow uses; everything else stays raw.

Asterisk sends ~45 event types. We model the dozen the controller acts on as small frozen
dataclasses built straight from the JSON, and pass every other event through as `RawEvent`
so nothing is silently dropped (they are still logged at debug level and counted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    type: str
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def channel_id(self) -> str | None:
        """The channel this event belongs to, used to route it to its call's queue."""
        channel = self.raw.get("channel")
        if isinstance(channel, dict):
            return str(channel.get("id"))
        for kind in ("playback", "recording"):
            target = (self.raw.get(kind) or {}).get("target_uri", "") if kind in self.raw else ""
            if isinstance(target, str) and target.startswith("channel:"):
                return target[len("channel:") :]
        peer = self.raw.get("peer")
        if isinstance(peer, dict):
            return str(peer.get("id"))
        return None


@dataclass(frozen=True)
class RawEvent(Event):
    pass


@dataclass(frozen=True)
class StasisStart(Event):
    channel: str = ""
    args: tuple[str, ...] = ()
    caller_number: str = ""
    dialed: str = ""  # the extension the channel was in when it entered Stasis
    state: str = ""


@dataclass(frozen=True)
class StasisEnd(Event):
    channel: str = ""


@dataclass(frozen=True)
class ChannelHangupRequest(Event):
    channel: str = ""
    cause: int = 0


@dataclass(frozen=True)
class ChannelDestroyed(Event):
    channel: str = ""
    cause: int = 0
    cause_txt: str = ""


@dataclass(frozen=True)
class ChannelDtmfReceived(Event):
    channel: str = ""
    digit: str = ""
    duration_ms: int = 0


@dataclass(frozen=True)
class ChannelStateChange(Event):
    channel: str = ""
    state: str = ""


@dataclass(frozen=True)
class Dial(Event):
    """Progress of a dial we started on an outbound channel (`peer`)."""

    peer: str = ""
    dialstatus: str = ""  # "", RINGING, PROGRESS, ANSWER, BUSY, NOANSWER, CONGESTION, CHANUNAVAIL, CANCEL


@dataclass(frozen=True)
class PlaybackStarted(Event):
    playback: str = ""


@dataclass(frozen=True)
class PlaybackFinished(Event):
    playback: str = ""
    state: str = ""


@dataclass(frozen=True)
class RecordingFinished(Event):
    """RecordingFinished or RecordingFailed: the message is on disk (or not)."""

    name: str = ""
    state: str = ""  # done | failed | canceled
    duration: int = 0  # seconds


@dataclass(frozen=True)
class ApplicationReplaced(Event):
    pass


# The event types the controller acts on: Asterisk is asked to send only these (ivr.ari.stream
# sets the application's event filter on every connection). ChannelVarset alone — one per
# variable Asterisk or we set — would otherwise be most of the traffic. A new typed event
# above must be added here too, or it never arrives.
SUBSCRIBED = frozenset(
    {
        "StasisStart",
        "StasisEnd",
        "ChannelHangupRequest",
        "ChannelDestroyed",
        "ChannelDtmfReceived",
        "Dial",
        "ChannelUserevent",  # only the ring chains' HotlineRang (ivr.routing.dialplan): one per number rung
        "PlaybackFinished",
        "RecordingFinished",
        "RecordingFailed",
        "ApplicationReplaced",
    }
)


def _channel(raw: dict[str, Any]) -> dict[str, Any]:
    ch = raw.get("channel")
    return ch if isinstance(ch, dict) else {}


def parse(raw: dict[str, Any]) -> Event:
    """Build the typed event for a decoded JSON message (unknown types -> RawEvent)."""
    kind = str(raw.get("type", ""))
    ch = _channel(raw)
    cid = str(ch.get("id", ""))
    if kind == "StasisStart":
        caller = ch.get("caller") or {}
        dialplan = ch.get("dialplan") or {}
        return StasisStart(
            kind,
            raw,
            cid,
            tuple(str(a) for a in raw.get("args", [])),
            str(caller.get("number", "")),
            str(dialplan.get("exten", "")),
            str(ch.get("state", "")),
        )
    if kind == "StasisEnd":
        return StasisEnd(kind, raw, cid)
    if kind == "ChannelHangupRequest":
        return ChannelHangupRequest(kind, raw, cid, int(raw.get("cause", 0) or 0))
    if kind == "ChannelDestroyed":
        return ChannelDestroyed(kind, raw, cid, int(raw.get("cause", 0) or 0), str(raw.get("cause_txt", "")))
    if kind == "ChannelDtmfReceived":
        return ChannelDtmfReceived(kind, raw, cid, str(raw.get("digit", "")), int(raw.get("duration_ms", 0) or 0))
    if kind == "ChannelStateChange":
        return ChannelStateChange(kind, raw, cid, str(ch.get("state", "")))
    if kind == "Dial":
        peer = raw.get("peer") or {}
        return Dial(kind, raw, str(peer.get("id", "")), str(raw.get("dialstatus", "")))
    if kind in ("PlaybackStarted", "PlaybackFinished"):
        pb = raw.get("playback") or {}
        if kind == "PlaybackStarted":
            return PlaybackStarted(kind, raw, str(pb.get("id", "")))
        return PlaybackFinished(kind, raw, str(pb.get("id", "")), str(pb.get("state", "")))
    if kind in ("RecordingFinished", "RecordingFailed"):
        rec = raw.get("recording") or {}
        state = "failed" if kind == "RecordingFailed" else str(rec.get("state", "done"))
        return RecordingFinished(kind, raw, str(rec.get("name", "")), state, int(rec.get("duration", 0) or 0))
    if kind == "ApplicationReplaced":
        return ApplicationReplaced(kind, raw)
    return RawEvent(kind, raw)
