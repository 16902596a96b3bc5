"""Seat states in the call log: every change kept, and each seat's last one read back after a restart."""

from __future__ import annotations

from pathlib import Path

from ivr.calllog import open_calllog
from ivr.calllog.seats import SeatChanged, last_seat_states, seat_events


def test_each_seats_last_state_is_read_back_a_pending_one_counting_as_made(target: str, tmp_path: Path) -> None:
    log = open_calllog(target, tmp_path / "j")
    log.start()
    for change in [
        SeatChanged(1.0, "seat-1", "paused", "午餐", "api"),
        SeatChanged(2.0, "seat-1", "ready", "", "console"),
        SeatChanged(3.0, "seat-1", "signed_out", "", "dtmf", pending=True),  # asked during a call
        SeatChanged(4.0, "seat-2", "paused", "培训", "console"),
        SeatChanged(5.0, "seat-3", "wrap_up", "", "pool"),
        SeatChanged(6.0, "seat-2", "paused", "开会", "api"),
    ]:
        log.record(change)
    log.close()
    assert len(seat_events(log)) == 6
    assert last_seat_states(log) == {
        "seat-1": ("signed_out", ""),
        "seat-2": ("paused", "开会"),
        "seat-3": ("wrap_up", ""),
    }
