"""A call's prompts cost one request each, and a restarted controller can still stop one left playing.

Nothing is noted on the channel per prompt (it used to be a channel variable per prompt: one more
ARI request each); the playback ids come from a ring of slots named after the citizen's channel,
which a controller that lost its memory can enumerate.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ivr.ari import events as ev
from ivr.call.ari_call import PLAYBACK_SLOTS, AriCall, stop_left_prompts
from ivr.errors import AriNotFound

CHANNEL = "1733380000.42"


class PlayingAri:
    """Answers a play at once with its PlaybackFinished; `alive` are the playbacks Asterisk still has."""

    def __init__(self, alive: set[str] | None = None) -> None:
        self.requests: list[tuple[str, ...]] = []
        self.alive = set(alive or ())
        self.call: AriCall | None = None

    async def play(self, channel: str, playback_id: str, media: list[str], lang: str = "zh") -> None:
        self.requests.append(("play", channel, playback_id, ",".join(media)))
        assert self.call is not None
        raw: dict[str, Any] = {"type": "PlaybackFinished", "playback": {"id": playback_id, "state": "done"}}
        asyncio.get_running_loop().call_soon(self.call.queue.put_nowait, ev.parse(raw))

    async def stop_playback(self, playback_id: str) -> None:
        self.requests.append(("stop", playback_id))
        if playback_id not in self.alive:
            raise AriNotFound(f"DELETE /playbacks/{playback_id}: 404 Playback not found", status=404)
        self.alive.discard(playback_id)

    async def set_variable(self, channel: str, name: str, value: str) -> None:
        self.requests.append(("variable", channel, name))


def make_call(ari: PlayingAri, first_playback: int = 0) -> AriCall:
    call = AriCall(
        ari,  # type: ignore[arg-type]
        "c1",
        CHANNEL,
        register=lambda _c, _call: None,
        unregister=lambda _c: None,
        first_playback=first_playback,
    )
    ari.call = call
    return call


async def test_a_prompt_is_one_play_request_and_sets_no_channel_variable() -> None:
    ari = PlayingAri()
    call = make_call(ari)

    await call.play(["sound:greeting", "sound:notice", "sound:menu"])

    assert ari.requests == [("play", CHANNEL, f"{CHANNEL}-pb0", "sound:greeting,sound:notice,sound:menu")]


async def test_playback_ids_go_round_a_ring_of_slots_named_after_the_channel() -> None:
    ari = PlayingAri()
    call = make_call(ari)

    for _ in range(PLAYBACK_SLOTS + 2):
        await call.play(["sound:menu"])

    ids = [request[2] for request in ari.requests]
    assert ids[:3] == [f"{CHANNEL}-pb0", f"{CHANNEL}-pb1", f"{CHANNEL}-pb2"]
    assert ids[PLAYBACK_SLOTS:] == [f"{CHANNEL}-pb0", f"{CHANNEL}-pb1"]


async def test_a_restart_stops_every_slot_and_goes_on_after_the_prompt_left_playing() -> None:
    ari = PlayingAri(alive={f"{CHANNEL}-pb5"})

    first = await stop_left_prompts(ari, CHANNEL)  # type: ignore[arg-type]

    assert sorted(r[1] for r in ari.requests) == sorted(f"{CHANNEL}-pb{n}" for n in range(PLAYBACK_SLOTS))
    assert ari.alive == set() and first == 6
    call = make_call(ari, first_playback=first)
    ari.requests.clear()
    await call.play(["sound:menu"])
    assert ari.requests[0][2] == f"{CHANNEL}-pb6"  # a late end of the stopped pb5 cannot end it


async def test_a_restart_with_nothing_left_playing_starts_at_the_first_slot() -> None:
    assert await stop_left_prompts(PlayingAri(), CHANNEL) == 0  # type: ignore[arg-type]


async def test_the_last_slot_left_playing_wraps_round_to_the_first() -> None:
    ari = PlayingAri(alive={f"{CHANNEL}-pb{PLAYBACK_SLOTS - 1}"})
    assert await stop_left_prompts(ari, CHANNEL) == 0  # type: ignore[arg-type]
