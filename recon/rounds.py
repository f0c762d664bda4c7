"""The retry policy of a sweep, once (ARCHITECTURE.md): how many rounds, how long to wait after each, when to stop.

The semantics are engine.py's (``_RawSweep.steps``, where they were first written); it, engine6.py and ndp.py
each keep one ``Rounds`` and run their rounds through ``Rounds.each``, whose ``Round`` makes the end-of-round
decision for all three:

* ``retries=N`` sends N retry rounds to the targets still silent; ``retries=None`` adapts: a retry round
  follows while the last one still found hosts (a sign of loss), at most ``ADAPTIVE_RETRIES``.
* Between rounds the wait is as long as answers have taken so far: 3 x the slowest round trip + 20 ms, at
  least 50 ms, at most the timeout; the whole timeout while nothing has answered yet, and after a last fixed
  round. When the rounds end early (adaptive), the rest of the timeout is waited out once.
* What counts as found for that decision: hosts first found by the round. With several probe kinds the
  first round's later kinds are its retry (what they found counts); an answer to an earlier round's probe is
  slow, not lost, and does not count.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

__all__ = ["ADAPTIVE_RETRIES", "MIN_ROUND_WAIT", "Round", "Rounds", "Tally", "silent"]

ADAPTIVE_RETRIES = 6  # the cap on retry rounds when retries adapt (retries=None)
MIN_ROUND_WAIT = 0.05  # seconds: the shortest wait between rounds
_SILENT = bytes([1] + [0] * 255)  # a target's state byte → 1 while it is 0 (still silent), 0 once it is decided


def silent(state: bytearray) -> array[int]:
    """The indices of the targets whose state byte is 0 (still silent: a retry round's targets), 4 bytes each (a
    list would cost ~40 a target), made at C speed."""
    return array("I", itertools.compress(range(len(state)), state.translate(_SILENT)))


class Tally(Protocol):
    """What a sweep has counted that its rounds are decided by (engine._RawReceive, engine6._Receive6, ndp._Tally)."""

    @property
    def received(self) -> int: ...  # answers read: until the first, each wait is the whole timeout
    @property
    def max_rtt(self) -> float: ...  # the slowest answer's round trip, s
    @property
    def answered(self) -> int: ...  # hosts found
    @property
    def slow_finds(self) -> int: ...  # of them, found by an answer to an earlier round's probe
    @property
    def later_finds(self) -> int: ...  # of them, found first by one of the first round's later probe kinds
    @property
    def passes(self) -> int: ...  # probe kinds in the first round


@dataclass(frozen=True, slots=True)
class Rounds:
    """One sweep's rounds: ``timeout`` seconds, ``retries`` (None: adaptive)."""

    timeout: float
    retries: int | None

    @property
    def adaptive(self) -> bool:
        return self.retries is None

    @property
    def count(self) -> int:
        """The most rounds: the first and its retries."""
        return 1 + (ADAPTIVE_RETRIES if self.retries is None else self.retries)

    def last(self, rnd: int) -> bool:
        return rnd == self.count - 1

    def wait(self, rnd: int, answered: bool, max_rtt: float) -> float:
        """Seconds to wait after round ``rnd`` (``answered``: anything answered yet; ``max_rtt``: the slowest, s)."""
        if (self.last(rnd) and not self.adaptive) or not answered:
            return self.timeout
        return min(self.timeout, max(MIN_ROUND_WAIT, 3 * max_rtt + 0.02))

    def each(self, tally: Tally) -> Iterator[Round]:
        """The rounds of one sweep (``tally``: what it counts), each made as it begins; they run out after the last."""
        return (Round(self, rnd, tally) for rnd in range(self.count))

    def ends(self, rnd: int, found: int, passes: int = 1) -> bool:
        """True when no round follows round ``rnd``, which found ``found`` hosts (with ``passes`` probe kinds a
        round), though some targets are still silent; the caller then waits out the rest of the timeout
        (``timeout - wait``) once. Fixed retries never end early: the rounds run out."""
        if not self.adaptive:
            return False
        return self.last(rnd) or ((rnd > 0 or passes > 1) and not found)


class Round:
    """One round of a sweep (``Rounds.each``): the end-of-round decision, once for every engine. The sweep sends
    the round, waits ``wait()`` seconds and, unless that settled every target or the sweep was stopped, asks
    ``rest()`` whether another round follows."""

    __slots__ = ("_before", "_rounds", "_tally", "_waited", "number")

    def __init__(self, rounds: Rounds, number: int, tally: Tally) -> None:
        self.number, self._rounds, self._tally = number, rounds, tally
        self._before = tally.answered - tally.slow_finds
        self._waited = 0.0

    def wait(self) -> float:
        """Seconds to wait after the round's last send (``Rounds.wait``: as long as answers have taken so far)."""
        t = self._tally
        self._waited = self._rounds.wait(self.number, t.received > 0, t.max_rtt)
        return self._waited

    def rest(self) -> float | None:
        """After that wait: None when another round may follow; else none follows, and this is what is left of the
        timeout, to wait out once first. With several probe kinds, the first round's later kinds are its retry:
        they reach who lost (or drops) the first kind, and what they found is what it found."""
        t, rnd = self._tally, self.number
        found = t.later_finds if rnd == 0 and t.passes > 1 else t.answered - t.slow_finds - self._before
        return self._rounds.timeout - self._waited if self._rounds.ends(rnd, found, t.passes) else None
