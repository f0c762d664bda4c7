"""ping's statistics, as pure arithmetic (ARCHITECTURE.md): counters, RTTs and the summary.

Everything follows iputils ``ping_common.c`` exactly: integer microseconds; a
duplicate counts toward min/avg/max/mdev but not toward "received";
mdev = llsqrt(mean(rtt²) − mean(rtt)²) in the same clumsy order iputils uses; the
EWMA is kept as 8 × the average, as iputils' ``rtt``; ``pipe`` is the most probes
ever in flight when a reply came. No clock is read here: callers pass times in,
so the arithmetic is testable with plain numbers.
"""

from __future__ import annotations

from recon.models import PingStats

__all__ = ["Statistics", "rtt_summary"]


def rtt_summary(samples_us: list[int]) -> tuple[int, int, int, int]:
    """(min, avg, max, mdev) in integer µs, computed exactly as iputils ``finish()`` does."""
    total = len(samples_us)
    tsum = sum(samples_us)
    tsum2 = sum(t * t for t in samples_us)
    return _summary(min(samples_us), max(samples_us), tsum, tsum2, total)


def _summary(tmin: int, tmax: int, tsum: int, tsum2: int, total: int) -> tuple[int, int, int, int]:
    tmavg = tsum // total
    # iputils' order of operations, to truncate exactly where it does
    tmvar = (tsum2 - (tsum * tsum) // total) // total if tsum < 2**31 - 1 else tsum2 // total - tmavg * tmavg
    return tmin, tmavg, tmax, _llsqrt(tmvar)


def _llsqrt(a: int) -> int:
    """Integer Newton square root, as iputils' llsqrt (truncating)."""
    if a <= 0:
        return 0
    prev, x = None, a
    while prev is None or x < prev:
        prev, x = x, (x + a // x) // 2
    return prev


class Statistics:
    """The counters of one ping session. ``sent``/``reply``/``error`` take times in ns (monotonic)."""

    def __init__(self) -> None:
        self.transmitted = 0
        self.received = 0
        self.duplicates = 0
        self.errors = 0
        self.tmin = 0
        self.tmax = 0
        self.tsum = 0
        self.tsum2 = 0
        self.ewma8 = 0  # iputils 'rtt': 8 × the EWMA in µs
        self.pipe = 0
        self.acked = 0
        self.first_send_ns: int | None = None
        self.last_send_ns: int | None = None
        self._sent: dict[int, int] = {}
        self._rcvd = bytearray(0x10000 // 8)  # iputils' rcvd_tbl: one bit per seq

    def next_seq(self) -> int:
        return (self.transmitted + 1) & 0xFFFF

    def sent(self, seq: int, now_ns: int) -> None:
        """A probe left (or failed locally: iputils counts it as transmitted either way)."""
        self._rcvd[seq >> 3] &= ~(1 << (seq & 7)) & 0xFF
        self._sent[seq] = now_ns
        self.transmitted += 1
        if self.first_send_ns is None:
            self.first_send_ns = now_ns
        self.last_send_ns = now_ns

    def answered(self, seq: int) -> bool:
        return bool(self._rcvd[seq >> 3] & (1 << (seq & 7)))

    def acknowledge(self, seq: int) -> None:
        """iputils acknowledge(): a reply or error for ``seq`` came; track the pipe and the newest seq answered."""
        diff = (self.transmitted - seq) & 0xFFFF
        if diff <= 0x7FFF:
            self.pipe = max(self.pipe, diff + 1)
            newer = 0 < ((seq - self.acked) & 0xFFFF) <= 0x7FFF  # (int16_t)(seq - acked) > 0
            if newer or ((self.transmitted - self.acked) & 0xFFFF) > 0x7FFF:
                self.acked = seq

    def in_flight(self) -> int:
        """Probes sent and not yet answered, counted from the newest one answered (iputils in_flight)."""
        diff = (self.transmitted - self.acked) & 0xFFFF
        return diff if diff <= 0x7FFF else 0

    def reply(self, seq: int, recv_ns: int) -> tuple[int | None, bool]:
        """Account one echo reply for ``seq``: (its RTT in ns, or None for a seq we never sent; duplicate?)."""
        sent = self._sent.get(seq)
        rtt_ns = max(0, recv_ns - sent) if sent is not None else None
        dup = self.answered(seq)
        if rtt_ns is not None:
            us = rtt_ns // 1000
            self.tsum += us
            self.tsum2 += us * us
            self.tmin = us if (self.received + self.duplicates) == 0 else min(self.tmin, us)
            self.tmax = max(self.tmax, us)
            self.ewma8 = us * 8 if not self.ewma8 else self.ewma8 + us - self.ewma8 // 8
        self.acknowledge(seq)
        if dup:
            self.duplicates += 1
        else:
            self._rcvd[seq >> 3] |= 1 << (seq & 7)
            self.received += 1
        return rtt_ns, dup

    def error(self) -> None:
        self.errors += 1

    def wait_after_last_ns(self, interval_ns: int, linger_ns: int) -> int:
        """iputils __schedule_exit: after the last probe, wait this long for stragglers."""
        if self.received:
            return max(2 * self.tmax * 1000, interval_ns)
        return linger_ns

    def snapshot(self, host: str, address: str, *, final: bool = True, interval_us: int | None = None) -> PingStats:
        """The statistics so far (iputils arithmetic)."""
        total = self.received + self.duplicates
        tmin: int | None
        tavg: int | None
        tmax: int | None
        mdev: int | None
        if total:
            tmin, tavg, tmax, mdev = _summary(self.tmin, self.tmax, self.tsum, self.tsum2, total)
        else:
            tmin = tavg = tmax = mdev = None
        span_ns = (self.last_send_ns or 0) - (self.first_send_ns or 0)
        return PingStats(
            host=host, address=address, transmitted=self.transmitted, received=self.received,
            duplicates=self.duplicates, errors=self.errors, time_ms=(span_ns + 500_000) // 1_000_000,
            rtt_min_us=tmin, rtt_avg_us=tavg, rtt_max_us=tmax, rtt_mdev_us=mdev,
            rtt_ewma_us=self.ewma8 // 8 if total else None, pipe=self.pipe, final=final,
            time_us=span_ns // 1000, interval_us=interval_us,
        )
