"""Which new calls the controller takes: admission under overload.

HOTLINE_ADMISSION=adaptive (the default) needs no tuning. It bounds the calls *in setup* — admitted
but not yet hearing their first prompt — by a limit that follows what the box shows, the way a
TCP Vegas / Netflix "gradient" concurrency limiter does:

- the ARI response time (p90 of the client's requests over the last probe period) is compared
  with the lowest seen (a slowly forgetting minimum: the box's unloaded response time). While
  it stays within `tolerance` × that minimum (+ `slack_s`) and the event loop is not lagging,
  the limit grows by √limit per probe while calls use at least half of it (up to `initial`
  even when they do not, so a spike's cut heals on a quiet box);
- when the response time or the loop lag rises, the limit is multiplied by the gradient
  (target / measured, at most halved per probe).

A call beyond the limit is refused at once (no queue: a queued call holds Asterisk's resources
and the caller waits in silence). Below `floor` calls in setup nothing is ever refused: a quiet
box must take every call, whatever its latency history. By Little's law the calls in setup are
arrival rate × setup time, so they stay a handful on a healthy box at any rate it can carry and
grow only when each setup slows down, i.e. when the box is overloaded.

Refusing in the controller still costs Asterisk an INVITE, a Stasis entry and two ARI messages per
refused call, and under a sustained overload those refusals alone slow the calls that were taken. So
the controller also publishes the share of new calls it is refusing (`Shedding`) as two Asterisk
globals, and the dialplan refuses that share before Stasis (dialplan/extensions.conf
[hotline-entry]), where a refusal costs a few dialplan steps. The share expires on its own a few
seconds after the last publication: a controller that dies while shedding leaves no gate behind.

HOTLINE_MAX_CALL_RATE > 0 (or HOTLINE_ADMISSION=fixed) instead takes a fixed number of new calls
per second (`FixedRate`), for an operator who has benchmarked the box; HOTLINE_ADMISSION=off
takes every call.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

MODES = ("adaptive", "fixed", "off")


class FixedRate:
    """New calls per second the controller takes (HOTLINE_MAX_CALL_RATE; 0 = no limit).

    A token bucket holding one second's worth: bursts up to the rate pass, a sustained excess is
    refused. Set it at the rate BENCHMARKS.md measured for the machine.
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._clock = clock
        self._tokens = rate
        self._at = clock()
        self.refused = 0

    def admit(self) -> bool:
        if self.rate <= 0:
            return True
        now = self._clock()
        self._tokens = min(self.rate, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


@dataclass(frozen=True)
class Signals:
    """What the box showed over one probe period."""

    in_setup: int  # calls admitted, not yet hearing their first prompt (now)
    ari_p90_s: float | None  # p90 ARI response time over the period; None when no request was made
    loop_lag_s: float  # how late the probe's own sleep woke up: the event loop's backlog


class AdaptiveLimit:
    """A gradient limit on concurrent call setups. Pure: fed `Signals`, asked `admit(in_setup)`."""

    def __init__(
        self,
        *,
        initial: float = 40.0,
        floor: float = 10.0,
        ceiling: float = 400.0,
        tolerance: float = 2.0,
        slack_s: float = 0.010,
        lag_ok_s: float = 0.050,
        forget: float = 0.01,
        log_change: float = 0.5,
    ) -> None:
        self.ceiling = ceiling
        self.floor = min(floor, ceiling)
        self.initial = min(max(initial, self.floor), ceiling)
        self.limit = self.initial
        self.tolerance = tolerance
        self.slack_s = slack_s
        self.lag_ok_s = lag_ok_s
        self.forget = forget  # how fast the minimum forgets, per probe: a box that got slower for good re-baselines
        self.log_change = log_change
        self.baseline_s: float | None = None
        self.logged = self.limit  # the limit last reported by a `moved` result

    def admit(self, in_setup: int) -> bool:
        """Take a new call when `in_setup` calls are being set up already."""
        return in_setup < self.floor or in_setup < self.limit

    def gradient(self, signals: Signals) -> float:
        """1 when the box responds as when unloaded; down to 0.5 as ARI or the loop slow down."""
        g = 1.0
        p90 = signals.ari_p90_s
        if p90 is not None and p90 > 0:
            if self.baseline_s is None or p90 < self.baseline_s:
                self.baseline_s = p90
            else:
                self.baseline_s += (p90 - self.baseline_s) * self.forget
            g = min(g, (self.baseline_s * self.tolerance + self.slack_s) / p90)
        if signals.loop_lag_s > self.lag_ok_s:
            g = min(g, self.lag_ok_s / signals.loop_lag_s)
        return max(0.5, g)

    def update(self, signals: Signals) -> bool:
        """Move the limit after a probe; True when it moved by `log_change` or more since last said."""
        g = self.gradient(signals)
        if g < 1.0:
            new = self.limit * g
        elif signals.in_setup >= self.limit / 2:
            new = self.limit + math.sqrt(self.limit)
        elif self.limit < self.initial:
            new = min(self.initial, self.limit + math.sqrt(self.limit))
        else:
            new = self.limit
        self.limit = min(self.ceiling, max(self.floor, new))
        if abs(self.limit - self.logged) >= self.log_change * self.logged:
            self.logged = self.limit
            return True
        return False


def p90(samples: Iterable[float]) -> float | None:
    ordered = sorted(samples)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, math.ceil(0.9 * len(ordered)) - 1)]


class InSetup:
    """The calls admitted and not yet past their setup, by call id (ending twice is harmless)."""

    def __init__(self) -> None:
        self._calls: set[str] = set()

    def begin(self, call_id: str) -> None:
        self._calls.add(call_id)

    def end(self, call_id: str) -> None:
        self._calls.discard(call_id)

    def __len__(self) -> int:
        return len(self._calls)


class Shedding:
    """The share of new calls Asterisk refuses before they reach the controller. Pure: fed, each probe, the
    calls that reached the controller and how many of them its own gate refused.

    The calls reaching the controller are the offered ones less the share already shed, so when the
    controller refuses `refused` of `reached`, the box carries (reached - refused) / reached of what
    passes the gate, i.e. that times (1 - share) of all it is offered: the new share is the rest. A
    probe with no refusal lowers the share by `step_down`, so it follows a load that eases: when it
    falls too far, the controller's own gate refuses again and the share comes back. Capped at
    `most`: a trickle always reaches the controller, which must see calls to tell the load eased.
    Fewer than `least` refusals in a probe are left to the controller's own gate: a stray refusal is
    cheap, and one refusal of one call must not turn away 90 % of the next seconds' callers.
    """

    def __init__(self, *, step_down: float = 0.05, most: float = 0.9, least: int = 3) -> None:
        self.share = 0.0
        self.step_down = step_down
        self.most = most
        self.least = least

    def update(self, reached: int, refused: int) -> float:
        if reached > 0 and refused >= self.least:
            carried = (reached - min(refused, reached)) / reached * (1.0 - self.share)
            self.share = min(self.most, 1.0 - carried)
        else:
            self.share = max(0.0, self.share - self.step_down)
        return self.share

    @property
    def percent(self) -> int:
        """The share as the dialplan reads it: whole percent (RAND(1,100) <= percent is refused)."""
        return round(self.share * 100)
