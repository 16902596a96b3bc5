"""Which call an ARI event belongs to (ivr.call.dispatcher): the ring chain's events included."""

from __future__ import annotations

from ivr.ari import events as ev
from ivr.call.dispatcher import Dispatcher


class Queue(list[ev.Event]):
    def put_nowait(self, event: ev.Event) -> None:
        self.append(event)


class FakeCall:
    def __init__(self) -> None:
        self.queue = Queue()


def dispatcher() -> tuple[Dispatcher, list[ev.StasisStart], list[ev.StasisStart]]:
    new: list[ev.StasisStart] = []
    orphans: list[ev.StasisStart] = []
    return Dispatcher(new.append, orphans.append), new, orphans


def test_a_dial_the_dialplan_runs_for_our_caller_reaches_the_callers_call() -> None:
    hub, _, _ = dispatcher()
    call = FakeCall()
    hub.register("caller-1", call)  # type: ignore[arg-type]

    event = ev.parse({"type": "Dial", "peer": {"id": "asterisk-peer"}, "caller": {"id": "caller-1"}, "dialstatus": ""})
    hub.dispatch(event)

    assert call.queue == [event]


def test_a_caller_back_from_a_ring_chain_nobody_knows_is_no_new_call() -> None:
    hub, new, orphans = dispatcher()

    back = ev.parse({"type": "StasisStart", "args": ["ringchain", "ANSWER", "12"], "channel": {"id": "caller-9"}})
    hub.dispatch(back)

    assert (new, orphans) == ([], [back])
