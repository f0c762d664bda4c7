"""Target specs → a lazy, de-duplicated IPv4 address set with a known size.

Accepted forms (each may appear in a comma list, on the command line or one per
line in a file):

    198.18.0.7                    one address
    198.18.0.1-120                last-octet range
    198.18.0.1-198.18.1.10        full range
    198.18.0.0/24                 CIDR (host bits are cleared, as nmap does)
    198.18.0-3.1-254              nmap octet ranges (also ``*`` and ``1,5,9`` per octet)
    gateway.lab                   a hostname, resolved once (first IPv4 address)

Parsing is strict: ``1.2.3`` is an error (not inet_aton's 1.2.0.3). The set is
kept as merged intervals, so a /8 costs a few bytes, never 16M strings.
Scapy's own parser is not used: since 2.4.5 it rejects ``a.b.c.d-e``.
"""

from __future__ import annotations

import bisect
import ipaddress
import math
import random
import re
import socket
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from recon.errors import InputError, InvalidOption, InvalidTarget

__all__ = [
    "TargetSet",
    "parse_specs",
    "build_targets",
    "read_spec_file",
    "resolve_host",
    "int_to_ip",
    "is_ipv4",
    "ip_to_int",
    "MAX_WITHOUT_YES",
]

MAX_WITHOUT_YES = 65_536
_MAX_PATTERN_INTERVALS = 1 << 20

_DOTTED = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
_FULL_RANGE = re.compile(r"^([^-/]+)-(\d+\.\d+\.\d+\.\d+)$")
_NUMERIC = re.compile(r"^[\d.,*/-]+$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_-]{1,63})*\.?$")

Interval = tuple[int, int]  # inclusive bounds


def ip_to_int(address: str) -> int:
    return int.from_bytes(socket.inet_aton(address), "big")


def is_ipv4(text: str) -> bool:
    """A dotted quad with four decimal octets (inet_aton alone also takes '1.2.3')."""
    try:
        socket.inet_aton(text)
    except OSError:
        return False
    return text.count(".") == 3


def int_to_ip(value: int) -> str:
    return socket.inet_ntoa(value.to_bytes(4, "big"))


def _octet(text: str, token: str) -> int:
    if not text:
        raise InvalidTarget(token, "an octet is empty")
    if not text.isdigit():
        raise InvalidTarget(token, f"octet {text!r} is not a number")
    value = int(text)
    if value > 255:
        raise InvalidTarget(token, f"octet {value} is over 255")
    return value


def _strict_address(text: str, token: str) -> int:
    """Dotted quad, four decimal octets, nothing else."""
    parts = text.split(".")
    if len(parts) != 4:
        raise InvalidTarget(token, f"an IPv4 address has 4 octets, {text!r} has {len(parts)}")
    value = 0
    for part in parts:
        value = (value << 8) | _octet(part, token)
    return value


def _octet_set(part: str, token: str) -> list[Interval]:
    """One nmap octet field: ``5``, ``1-254``, ``*``, ``-10`` or a list ``1,3,5-9``."""
    out: list[Interval] = []
    for item in part.split(","):
        if item == "*":
            out.append((0, 255))
            continue
        if "-" in item:
            lo_s, _, hi_s = item.partition("-")
            if not hi_s:
                raise InvalidTarget(token, f"range {item!r} has no end")
            lo = _octet(lo_s, token) if lo_s else 0
            hi = _octet(hi_s, token)
            if hi < lo:
                raise InvalidTarget(token, f"range end {hi} is below its start {lo}")
            out.append((lo, hi))
        else:
            value = _octet(item, token)
            out.append((value, value))
    return _merge(out)


def _pattern_intervals(token: str) -> list[Interval]:
    """nmap octet pattern → intervals (the last octet stays a run)."""
    parts = token.split(".")
    if len(parts) != 4:
        raise InvalidTarget(token, f"an IPv4 address has 4 octets, this has {len(parts)}")
    sets = [_octet_set(p, token) for p in parts]
    prefixes = [0]
    for octet_runs in sets[:3]:
        count = len(prefixes) * sum(hi - lo + 1 for lo, hi in octet_runs)
        if count * len(sets[3]) > _MAX_PATTERN_INTERVALS:
            raise InvalidTarget(token, "pattern expands to too many separate runs", hint="use a CIDR instead")
        prefixes = [(p << 8) | v for p in prefixes for lo, hi in octet_runs for v in range(lo, hi + 1)]
    return [((p << 8) | lo, (p << 8) | hi) for p in prefixes for lo, hi in sets[3]]


def resolve_host(name: str, family: int = socket.AF_INET) -> str:
    """Resolve a name once; raise InvalidTarget when it does not resolve."""
    try:
        infos = socket.getaddrinfo(name, None, family, socket.SOCK_RAW)
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidTarget(
            name, "name does not resolve", hint=f"check the spelling or give an address ({exc.strerror if hasattr(exc, 'strerror') else exc})"
        ) from None
    return infos[0][4][0]


@dataclass(frozen=True)
class _Parsed:
    intervals: list[Interval]
    names: dict[int, str] = field(default_factory=dict)


def _parse_token(token: str) -> _Parsed:
    raw = token
    token = token.strip()
    if not token:
        raise InvalidTarget(raw, "empty target")
    if ":" in token:
        try:
            ipaddress.IPv6Network(token, strict=False)
        except ValueError:
            raise InvalidTarget(token, "not an IPv4 target") from None
        raise InvalidTarget(token, "IPv6 ranges cannot be swept", hint="use 'recon ping' for a single IPv6 host")
    if "/" in token:
        base, _, prefix_s = token.partition("/")
        if "/" in prefix_s:
            raise InvalidTarget(token, "more than one '/'")
        if not prefix_s.isdigit():
            raise InvalidTarget(token, f"prefix {prefix_s!r} is not a number from 0 to 32")
        prefix = int(prefix_s)
        if prefix > 32:
            raise InvalidTarget(token, f"prefix /{prefix} is over 32")
        names: dict[int, str] = {}
        if _NUMERIC.match(base):
            start = _strict_address(base, token)
        else:
            start = ip_to_int(_resolve_checked(base, token))
        mask = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
        start &= mask
        return _Parsed([(start, start | (~mask & 0xFFFFFFFF))], names)
    full = _FULL_RANGE.match(token)
    if full and _DOTTED.match(full.group(1)):
        lo = _strict_address(full.group(1), token)
        hi = _strict_address(full.group(2), token)
        if hi < lo:
            raise InvalidTarget(token, "range end is below its start")
        return _Parsed([(lo, hi)])
    if _NUMERIC.match(token):
        if "," in token and token.count(".") != 3:
            raise _CommaList()
        try:
            return _Parsed(_pattern_intervals(token))
        except InvalidTarget:
            if "," in token:
                raise _CommaList() from None
            raise
    if "," in token:
        raise _CommaList()
    address = _resolve_checked(token, token)
    value = ip_to_int(address)
    return _Parsed([(value, value)], {value: token.rstrip(".")})


def _resolve_checked(name: str, token: str) -> str:
    if not _HOSTNAME.match(name):
        raise InvalidTarget(token, "not an address, range, CIDR or hostname")
    return resolve_host(name)


class _CommaList(Exception):
    """Internal: the token is a comma list of specs, not an octet pattern."""


def _merge(intervals: Iterable[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for lo, hi in sorted(intervals):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def _subtract(base: list[Interval], cut: list[Interval]) -> list[Interval]:
    out: list[Interval] = []
    j = 0
    for lo, hi in base:
        while j < len(cut) and cut[j][1] < lo:
            j += 1
        k = j
        cur = lo
        while k < len(cut) and cut[k][0] <= hi:
            c_lo, c_hi = cut[k]
            if c_lo > cur:
                out.append((cur, c_lo - 1))
            cur = max(cur, c_hi + 1)
            k += 1
        if cur <= hi:
            out.append((cur, hi))
    return out


def parse_specs(specs: Iterable[str]) -> _Parsed:
    """Parse specs (whitespace- or comma-separated) into merged intervals."""
    intervals: list[Interval] = []
    names: dict[int, str] = {}
    for spec in specs:
        words = spec.split()
        if not words:
            raise InvalidTarget(spec, "empty target")
        for word in words:
            for parsed in _parse_word(word):
                intervals.extend(parsed.intervals)
                names.update(parsed.names)
    return _Parsed(_merge(intervals), names)


def _parse_word(word: str) -> list[_Parsed]:
    """A word is one spec, an nmap octet pattern with commas, or a comma list."""
    try:
        return [_parse_token(word)]
    except _CommaList:
        pieces = word.split(",")
        if any(not p for p in pieces):
            raise InvalidTarget(word, "empty item in a comma list") from None
        return [_parse_token(p) for p in pieces]


def read_spec_file(path: str) -> list[str]:
    """One spec a line, ``#`` comments, ``-`` for stdin."""
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            text = Path(path).read_text()
    except OSError as exc:
        raise InputError(f"cannot read target file {path!r}: {exc.strerror}", hint="check the path") from None
    specs = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            specs.append(line)
    return specs


class TargetSet(Sequence[str]):
    """An ordered, de-duplicated set of IPv4 addresses held as intervals.

    ``len()`` is known without iterating; ``ints()`` walks in address order;
    ``order(seed, shard)`` walks a seeded permutation (a bijection on indices).
    """

    __slots__ = ("_intervals", "_starts", "_cum", "_size", "names")

    def __init__(self, intervals: Iterable[Interval] = (), names: dict[int, str] | None = None) -> None:
        self._intervals: list[Interval] = _merge(intervals)
        self._starts = [lo for lo, _ in self._intervals]
        self._cum: list[int] = []
        total = 0
        for lo, hi in self._intervals:
            self._cum.append(total)
            total += hi - lo + 1
        self._size = total
        self.names: dict[int, str] = {k: v for k, v in (names or {}).items() if self.contains_int(k)}

    # -- size and membership ------------------------------------------------
    def __len__(self) -> int:
        return self._size

    @property
    def intervals(self) -> list[Interval]:
        return list(self._intervals)

    def contains_int(self, value: int) -> bool:
        i = bisect.bisect_right(self._starts, value) - 1
        return i >= 0 and value <= self._intervals[i][1]

    def __contains__(self, address: object) -> bool:
        if isinstance(address, int):
            return self.contains_int(address)
        if isinstance(address, str):
            try:
                return self.contains_int(ip_to_int(address))
            except OSError:
                return False
        return False

    # -- indexing -----------------------------------------------------------
    def int_at(self, index: int) -> int:
        if index < 0:
            index += self._size
        if not 0 <= index < self._size:
            raise IndexError(index)
        i = bisect.bisect_right(self._cum, index) - 1
        return self._intervals[i][0] + index - self._cum[i]

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [int_to_ip(self.int_at(i)) for i in range(*index.indices(self._size))]
        return int_to_ip(self.int_at(index))

    def ints(self) -> Iterator[int]:
        for lo, hi in self._intervals:
            yield from range(lo, hi + 1)

    def __iter__(self) -> Iterator[str]:
        for value in self.ints():
            yield int_to_ip(value)

    # -- set algebra ----------------------------------------------------------
    def exclude(self, other: "TargetSet") -> "TargetSet":
        return TargetSet(_subtract(self._intervals, other._intervals), self.names)

    # -- randomized order and shards -------------------------------------------
    def order(self, seed: int | None = None, shard: tuple[int, int] = (1, 1)) -> Iterator[int]:
        """Addresses (as ints) in a seeded pseudo-random order, zmap-style.

        The walk is the affine bijection ``i -> (a*i + b) mod n`` with
        ``gcd(a, n) == 1``; shard ``k/N`` takes the positions ``i ≡ k-1 (mod N)``,
        so shards are disjoint and together complete. ``seed=None`` walks in
        address order.
        """
        k, total = shard
        if not (1 <= k <= total):
            raise InvalidOption("--shard", f"{k}/{total}", "use I/N with 1 <= I <= N")
        n = self._size
        if n == 0:
            return iter(())
        positions = range(k - 1, n, total)
        if seed is None:
            index_iter: Iterable[int] = positions
        else:
            a, b = _affine(n, seed)
            index_iter = ((a * i + b) % n for i in positions)
        if len(self._intervals) == 1:
            base = self._intervals[0][0]
            return (base + i for i in index_iter)
        return (self.int_at(i) for i in index_iter)

    def __repr__(self) -> str:
        return f"TargetSet(size={self._size}, runs={len(self._intervals)})"


def _affine(n: int, seed: int) -> tuple[int, int]:
    rng = random.Random(seed)
    if n <= 2:
        return 1, rng.randrange(n)
    # Start near n/phi so consecutive probes land far apart, then walk to a unit mod n.
    a = int(n * 0.6180339887) + rng.randrange(max(1, n // 16))
    a = max(a % n, 1)
    while math.gcd(a, n) != 1:
        a = a % (n - 1) + 1
    return a, rng.randrange(n)


def build_targets(
    specs: Sequence[str] = (),
    *,
    input_file: str | None = None,
    exclude: Sequence[str] = (),
    exclude_file: str | None = None,
    yes: bool = False,
    limit: int = MAX_WITHOUT_YES,
) -> TargetSet:
    """Everything the CLI takes about targets → one TargetSet, or InvalidTarget."""
    all_specs = list(specs)
    if input_file is not None:
        all_specs.extend(read_spec_file(input_file))
    if not all_specs:
        raise InputError("no targets given", hint="name at least one address, range, CIDR or hostname")
    included = parse_specs(all_specs)
    targets = TargetSet(included.intervals, included.names)
    excluded_specs = list(exclude)
    if exclude_file is not None:
        excluded_specs.extend(read_spec_file(exclude_file))
    if excluded_specs:
        targets = targets.exclude(TargetSet(parse_specs(excluded_specs).intervals))
    if len(targets) == 0:
        raise InputError("no targets left after exclusions", hint="check --exclude")
    if len(targets) > limit and not yes:
        raise InputError(
            f"{len(targets):,} addresses is more than {limit:,}",
            hint="add --yes if you really mean to probe that many",
        )
    return targets
