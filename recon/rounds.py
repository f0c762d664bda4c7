"""The retry policy of a sweep, once (ARCHITECTURE.md): how many rounds, how long to wait after each, when to stop.

The semantics are engine.py's (``_RawSweep.steps``, where they were first written); it, engine6.py and ndp.py
run them through this object:

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
from dataclasses import dataclass

__all__ = ["ADAPTIVE_RETRIES", "MIN_ROUND_WAIT", "Rounds", "silent"]

ADAPTIVE_RETRIES = 6  # the cap on retry rounds when retries adapt (retries=None)
MIN_ROUND_WAIT = 0.05  # seconds: the shortest wait between rounds
_SILENT = bytes([1] + [0] * 255)  # a target's state byte → 1 while it is 0 (still silent), 0 once it is decided


def silent(state: bytearray) -> array[int]:
    """The indices of the targets whose state byte is 0 (still silent: a retry round's targets), 4 bytes each (a
    list would cost ~40 a target), made at C speed."""
    return array("I", itertools.compress(range(len(state)), state.translate(_SILENT)))


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

    def ends(self, rnd: int, found: int, passes: int = 1) -> bool:
        """True when no round follows round ``rnd``, which found ``found`` hosts (with ``passes`` probe kinds a
        round), though some targets are still silent; the caller then waits out the rest of the timeout
        (``timeout - wait``) once. Fixed retries never end early: the rounds run out."""
        if not self.adaptive:
            return False
        return self.last(rnd) or ((rnd > 0 or passes > 1) and not found)
