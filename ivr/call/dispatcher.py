"""Events -> the call they belong to, in order, without one call ever waiting on another.

Each AriCall has its own queue; the dispatcher only looks up the channel id and enqueues, so a
slow call (a stuck REST request, a long database write) cannot delay any other call's events.
Outbound channels are registered by their AriCall *before* they are created (we choose their
ids), so their very first event already has a home.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from ivr.ari import events as ev
from ivr.call.ari_call import AriCall
from ivr.routing.dialplan import CHAIN_BACK

log = structlog.get_logger("ivr.call.dispatcher")


class Dispatcher:
    def __init__(
        self, on_new_call: Callable[[ev.StasisStart], None], on_orphan: Callable[[ev.StasisStart], None]
    ) -> None:
        self._calls: dict[str, AriCall] = {}
        self._on_new_call = on_new_call
        self._on_orphan = on_orphan

    def register(self, channel_id: str, call: AriCall) -> None:
        self._calls[channel_id] = call

    def unregister(self, channel_id: str) -> None:
        self._calls.pop(channel_id, None)

    def calls(self) -> set[AriCall]:
        return set(self._calls.values())

    def known(self, channel_id: str) -> bool:
        return channel_id in self._calls

    def dispatch(self, event: ev.Event) -> None:
        channel = event.channel_id
        call = self._calls.get(channel) if channel else None
        if call is None and isinstance(event, ev.Dial):
            # A Dial the dialplan runs for a caller of ours (HOTLINE_DIAL_PATH=dialplan): the peer is
            # Asterisk's channel, the caller ours.
            call = self._calls.get(str((event.raw.get("caller") or {}).get("id", "")))
        if call is not None:
            call.queue.put_nowait(event)
            return
        if isinstance(event, ev.StasisStart):
            # outbound: a call we place (ivr.outbound); snoop: a supervisor's ear (ivr.operators.supervise)
            if event.args and event.args[0] in ("dialed", "outbound", "snoop", CHAIN_BACK):
                # An outbound leg whose call already ended (the caller hung up while we were
                # creating it): nobody wants it. A caller back from a ring chain a dead controller
                # sent it to: its conversation is over and no coroutine knows the call (not a new one).
                self._on_orphan(event)
            else:
                self._on_new_call(event)
            return
        log.debug("event_without_call", type=event.type, channel=channel)
