"""Target specs → a lazy, de-duplicated address set with a known size.

Accepted forms (each may appear in a comma list, on the command line or one per
line in a file):

    198.18.0.7                    one address
    198.18.0.1-120                last-octet range
    198.18.0.1-198.18.1.10        full range
    198.18.0.0/24                 CIDR (host bits are cleared, as nmap does)
    198.18.0-3.1-254              nmap octet ranges (also ``*`` and ``1,5,9`` per octet)
    gateway.lab                   a hostname, resolved once (its first IPv4 address,
                                  else its first IPv6 address)
    2001:db8::7                   one IPv6 address
    2001:db8::1-ff                IPv6 range in the last group (hex), or
    2001:db8::1-2001:db8::1:0     a full IPv6 range
    2001:db8::/120                IPv6 CIDR
    fe80::1%eth0, ff02::1%eth0    a link-local or multicast address on an interface
                                  (kept with its scope; a multicast group is one probe)

Parsing is strict and bounded: ASCII digits only; ``1.2.3``, ``0x7f.1`` and
other inet_aton shorthands are errors, and nothing that looks numeric is handed
to the system resolver. Sizes are counted before anything is expanded. The set
is kept as merged intervals, so a /8 costs a few bytes, never 16M strings.
Scapy's own parser is not used: since 2.4.5 it rejects ``a.b.c.d-e``.

A name that does not resolve is a warning in ``TargetSet.warnings`` and the rest
is swept, as nmap does; only when nothing is left is it an error.
"""

from __future__ import annotations

import bisect
import ipaddress
import itertools
import math
import random
import re
import socket
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO, overload

from recon.errors import InputError, InvalidOption, InvalidTarget
from recon.models import ScopedTarget, TargetWarning

__all__ = [
    "IFNAME",
    "MAX_FILE_BYTES",
    "MAX_LINE_BYTES",
    "MAX_RUNS",
    "MAX_SHARDS",
    "MAX_V6_RANGE",
    "MAX_WITHOUT_YES",
    "TargetSet",
    "V6Targets",
    "Walk",
    "address_key",
    "build_targets",
    "exact_address",
    "int_to_ip",
    "int_to_ip6",
    "ip_to_int",
    "is_ipv4",
    "parse_shard",
    "parse_specs",
    "read_spec_file",
    "resolve_host",
    "scoped_target",
    "system_resolver",
]

MAX_WITHOUT_YES = 65_536  # addresses (IPv4 + IPv6) without --yes
MAX_V6_RANGE = 1 << 32  # one IPv6 range or CIDR (a /96), even with --yes
MAX_RUNS = 1 << 18  # separate runs over all specs: bounds memory (about 60 MB at most)
MAX_SHARDS = 65_535  # as zmap (a 16-bit shard count)
MAX_FILE_BYTES = 16 << 20  # an --input-file / --exclude-file
MAX_LINE_BYTES = 64 << 10

_DEC = re.compile(r"[0-9]+")
_HEX4 = re.compile(r"[0-9A-Fa-f]{1,4}")
_DOTTED = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+")
_FULL_RANGE = re.compile(r"([^-/]+)-([0-9]+\.[0-9]+\.[0-9]+\.[0-9]+)")
_NUMERIC = re.compile(r"[0-9.,*/-]+")
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"  # RFC 1123: no hyphen at either end
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?")
_LAST_LABEL_NUMERIC = re.compile(r"(?:[0-9]+|0[xX][0-9A-Fa-f]*)")  # WHATWG "ends in a number"
IFNAME = re.compile(r"[A-Za-z0-9_.:@-]{1,15}")  # an interface name: Linux IFNAMSIZ - 1

Interval = tuple[int, int]  # inclusive bounds
Resolver = Callable[[str], Sequence[str]]  # name -> addresses; raises socket.gaierror


def _short(text: str, keep: int = 40) -> str:
    return text if len(text) <= keep else f"{text[:keep]}… ({len(text):,} characters)"


def ip_to_int(address: str) -> int:
    """A dotted quad known to be valid (internal, fast) → int. Use ``is_ipv4`` on outside input."""
    return int.from_bytes(socket.inet_aton(address), "big")


def is_ipv4(text: str) -> bool:
    """Exactly a dotted quad of four ASCII decimal octets (inet_aton also takes '1.2.3', hex and trailing junk)."""
    if not isinstance(text, str) or not text.isascii() or not _DOTTED.fullmatch(text):
        return False
    return all(len(p) <= 3 and int(p) <= 255 for p in text.split("."))


def _dotted_value(text: object) -> int | None:
    """The value of a dotted quad as ``is_ipv4`` takes it (decimal octets: ``010`` is 10, where ``ip_to_int``'s
    inet_aton reads it as octal 8 and refuses ``09``), or None when ``text`` is not one."""
    if not isinstance(text, str) or not is_ipv4(text):
        return None
    return int.from_bytes(bytes(int(octet) for octet in text.split(".")), "big")


def address_key(address: str) -> tuple[int, int, str]:
    """The one sort order of addresses in text (tables, inventories, merged results): IPv4, then IPv6, each by
    number, a scoped address (``fe80::1%eth0``) by address and then by interface; text that is neither last."""
    try:
        if ":" not in address:
            return (4, int.from_bytes(socket.inet_aton(address), "big"), "")
        text, _, scope = address.partition("%")
        return (6, int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big"), scope)
    except (OSError, ValueError):
        return (7, 0, address)


def int_to_ip(value: int) -> str:
    return socket.inet_ntoa(value.to_bytes(4, "big"))


def int_to_ip6(value: int) -> str:
    return socket.inet_ntop(socket.AF_INET6, value.to_bytes(16, "big"))


# --- IPv4 pieces ----------------------------------------------------------------------------


def _octet(text: str, token: str) -> int:
    if not text:
        raise InvalidTarget(token, "an octet is empty")
    if not _DEC.fullmatch(text):
        raise InvalidTarget(token, f"octet {_short(text)!r} is not a number")
    if len(text) > 3:
        raise InvalidTarget(token, f"octet {_short(text)!r} has more than 3 digits")
    value = int(text)
    if value > 255:
        raise InvalidTarget(token, f"octet {value} is over 255")
    return value


def _strict_address(text: str, token: str) -> int:
    """Dotted quad, four decimal octets, nothing else."""
    parts = text.split(".")
    if len(parts) != 4:
        raise InvalidTarget(token, f"an IPv4 address has 4 octets, {_short(text)!r} has {len(parts)}")
    value = 0
    for part in parts:
        value = (value << 8) | _octet(part, token)
    return value


def _prefix(text: str, token: str, top: int) -> int:
    if not _DEC.fullmatch(text) or len(text) > 3:
        raise InvalidTarget(token, f"prefix {_short(text)!r} is not a number from 0 to {top}")
    value = int(text)
    if value > top:
        raise InvalidTarget(token, f"prefix /{value} is over {top}")
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
                raise InvalidTarget(token, f"range {_short(item)!r} has no end")
            lo = _octet(lo_s, token) if lo_s else 0
            hi = _octet(hi_s, token)
            if hi < lo:
                raise InvalidTarget(token, f"range end {hi} is below its start {lo}")
            out.append((lo, hi))
        else:
            value = _octet(item, token)
            out.append((value, value))
    return _merge(out)


# --- IPv6 pieces ----------------------------------------------------------------------------


def _v6_address(text: str, token: str) -> int:
    if "%" in text or not text:
        raise InvalidTarget(token, f"{_short(text)!r} is not an IPv6 address")
    try:
        return int(ipaddress.IPv6Address(text))
    except ValueError:
        raise InvalidTarget(token, f"{_short(text)!r} is not an IPv6 address") from None


def _is_link_local(value: int) -> bool:
    return value >> 118 == 0x3FA  # fe80::/10


def _is_multicast(value: int) -> bool:
    return value >> 120 == 0xFF  # ff00::/8


def _v6_interval(token: str, text: str | None = None) -> Interval:
    """An IPv6 address, range (``a-b`` or ``a-ffff`` in the last group) or CIDR → one interval."""
    text = token if text is None else text
    if "/" in text:
        base, _, prefix_s = text.partition("/")
        prefix = _prefix(prefix_s, token, 128)
        mask = ((1 << 128) - 1) ^ ((1 << (128 - prefix)) - 1)
        lo = _v6_address(base, token) & mask
        hi = lo | ((1 << (128 - prefix)) - 1)
    elif "-" in text:
        lo_s, _, hi_s = text.partition("-")
        lo = _v6_address(lo_s, token)
        if ":" in hi_s:
            hi = _v6_address(hi_s, token)
        elif _HEX4.fullmatch(hi_s):
            hi = (lo & ~0xFFFF) | int(hi_s, 16)
        else:
            raise InvalidTarget(token, f"range end {_short(hi_s)!r} is neither an IPv6 address nor 1 to 4 hex digits")
        if hi < lo:
            raise InvalidTarget(token, "range end is below its start")
    else:
        lo = hi = _v6_address(text, token)
    for end in (lo, hi):
        if _is_link_local(end) or _is_multicast(end):
            kind = "multicast" if _is_multicast(end) else "link-local"
            raise InvalidTarget(
                token, f"a {kind} IPv6 target needs its interface",
                hint="give one address with its scope, as in fe80::1%eth0 or ff02::1%eth0",
            )
    if hi - lo + 1 > MAX_V6_RANGE:
        raise InvalidTarget(
            token, f"IPv6 range of {hi - lo + 1:,} addresses; at most {MAX_V6_RANGE:,} (a /96) can be swept, even with --yes",
            hint="give a longer prefix, or a shorter range",
        )
    return lo, hi


def _interface(scope: str, token: str) -> tuple[str, int]:
    """``eth0`` or an index ``2`` → (name, index) of an interface that exists here."""
    if not scope:
        raise InvalidTarget(token, "the interface after '%' is empty")
    if not IFNAME.fullmatch(scope):
        raise InvalidTarget(token, f"{_short(scope)!r} is not an interface name")
    try:
        if scope.isdigit():
            return socket.if_indextoname(int(scope)), int(scope)
        return scope, socket.if_nametoindex(scope)
    except (OSError, OverflowError, ValueError):
        raise InvalidTarget(token, f"no interface {scope!r} here", hint="see 'ip link' for the names") from None


def exact_address(text: str) -> tuple[int, int, str]:
    """``address_key`` of an address read back from a file, strictly: (family, value, scope) of a dotted quad, or of
    IPv6 in its compressed form with at most an interface name after ``%`` (``fe80::1%eth0`` → (6, int, "eth0"));
    anything else, which no sweep writes, is a ValueError (the ``--resume`` journal's rows are checked with it)."""
    if not isinstance(text, str) or not text.isascii() or len(text) > 64:
        raise ValueError("not an address")
    if ":" not in text:
        value = _dotted_value(text)
        if value is None or int_to_ip(value) != text:
            raise ValueError(f"{text!r} is not a dotted quad")
        return 4, value, ""
    addr, pct, scope = text.partition("%")
    if pct and not IFNAME.fullmatch(scope):
        raise ValueError(f"{text!r}: not an interface name after '%'")
    try:
        value = int.from_bytes(socket.inet_pton(socket.AF_INET6, addr), "big")
    except OSError:
        raise ValueError(f"{text!r} is not an IPv6 address") from None
    if int_to_ip6(value) != addr:
        raise ValueError(f"{text!r} is not in compressed form")
    return 6, value, scope


def scoped_target(token: str) -> ScopedTarget:
    """``fe80::1%eth0`` or ``ff02::1%eth0`` → a ScopedTarget on this machine's interface of that name (InvalidTarget
    when it is not one, or no such interface is here): how the parser reads a scoped spec, and what a cluster worker
    rebuilds a scoped target from."""
    addr_s, _, scope = token.partition("%")
    if ":" not in addr_s:
        raise InvalidTarget(token, "a scope (%IFACE) goes only with an IPv6 address")
    if "/" in addr_s or "-" in addr_s:
        raise InvalidTarget(token, "a scoped target (%IFACE) is one address, not a range")
    value = _v6_address(addr_s, token)
    if not (_is_link_local(value) or _is_multicast(value)):
        raise InvalidTarget(token, "a scope (%IFACE) goes only with link-local (fe80::/10) or multicast (ff00::/8) addresses")
    name, index = _interface(scope, token)
    return ScopedTarget(int_to_ip6(value), name, index, multicast=_is_multicast(value))


# --- names ----------------------------------------------------------------------------------


def system_resolver(name: str) -> list[str]:
    """The system's resolver (hosts file, DNS): every address of ``name``; raises socket.gaierror."""
    infos = socket.getaddrinfo(name, None, socket.AF_UNSPEC, socket.SOCK_RAW)
    return [str(info[4][0]).partition("%")[0] for info in infos]


def _check_name(name: str, token: str) -> None:
    """A syntactically valid hostname that is not a numeric address in disguise (never for inet_aton)."""
    if not _HOSTNAME.fullmatch(name):
        raise InvalidTarget(token, "not an address, range, CIDR or hostname")
    if _LAST_LABEL_NUMERIC.fullmatch(name.rstrip(".").rsplit(".", 1)[-1]):
        raise InvalidTarget(
            token, "looks like a numeric address but is not a dotted quad",
            hint="write IPv4 addresses as four decimal octets, as in 198.18.0.10",
        )


def resolve_host(name: str, family: int = socket.AF_INET) -> str:
    """Resolve a name once; raise InvalidTarget when it does not resolve or looks numeric."""
    _check_name(name, name)
    try:
        infos = socket.getaddrinfo(name, None, family, socket.SOCK_RAW)
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidTarget(name, "name does not resolve", hint=f"check the spelling or give an address ({_gai_text(exc)})") from None
    return str(infos[0][4][0])


def _gai_text(exc: BaseException) -> str:
    return str(getattr(exc, "strerror", None) or exc)


class _Unresolved(Exception):
    """Internal: a name that does not resolve (a warning unless nothing else is left)."""

    def __init__(self, token: str, reason: str) -> None:
        super().__init__(token)
        self.token = token
        self.reason = reason


def _resolve(name: str, token: str, resolver: Resolver) -> tuple[int, int]:
    """A hostname → (4 or 6, address as int): its first IPv4 address, else its first IPv6 address."""
    _check_name(name, token)
    try:
        found = list(resolver(name))
    except (socket.gaierror, UnicodeError) as exc:
        raise _Unresolved(token, f"name does not resolve ({_gai_text(exc)})") from None
    for text in found:
        if (value := _dotted_value(text)) is not None:
            return 4, value
    for text in found:
        try:
            return 6, int(ipaddress.IPv6Address(text.partition("%")[0]))
        except ValueError:
            continue
    raise _Unresolved(token, "name has no IPv4 or IPv6 address")


# --- the parser -----------------------------------------------------------------------------


class _CommaList(Exception):
    """Internal: the token is a comma list of specs, not an octet pattern."""


@dataclass
class _Parsed:
    """What the specs add up to, before merging: IPv4 and IPv6 runs, scoped targets, names, warnings."""

    intervals: list[Interval] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)
    v6: list[Interval] = field(default_factory=list)
    names6: dict[int, str] = field(default_factory=dict)
    scoped: list[ScopedTarget] = field(default_factory=list)
    warnings: list[TargetWarning] = field(default_factory=list)
    runs: int = 0

    def target_set(self) -> TargetSet:
        return TargetSet(self.intervals, self.names, v6=V6Targets(self.v6, self.names6), scoped=self.scoped, warnings=self.warnings)


def _too_many(count: int, limit: int) -> InputError:
    return InputError(f"{count:,} addresses is more than {limit:,}", hint="add --yes if you really mean to probe that many")


class _Parser:
    """Specs → _Parsed. Every piece is counted (runs, addresses) before it is expanded."""

    def __init__(self, resolver: Resolver, *, early_limit: int | None = None, names_must_resolve: bool = False) -> None:
        self.out = _Parsed()
        self.resolver = resolver
        self.early_limit = early_limit  # one spec alone over this is refused before it is expanded
        self.names_must_resolve = names_must_resolve

    def parse(self, specs: Iterable[str]) -> _Parsed:
        for spec in specs:
            words = spec.split()
            if not words:
                raise InvalidTarget(spec, "empty target")
            for word in words:
                self.word(word)
        return self.out

    def word(self, word: str) -> None:
        """A word is one spec, an nmap octet pattern with commas, or a comma list."""
        try:
            self.token(word)
        except _CommaList:
            pieces = word.split(",")
            if any(not p for p in pieces):
                raise InvalidTarget(word, "empty item in a comma list") from None
            for piece in pieces:
                self.token(piece)

    def _charge(self, token: str, runs: int, addresses: int) -> None:
        if self.out.runs + runs > MAX_RUNS:
            raise InvalidTarget(token, f"more than {MAX_RUNS:,} separate ranges in all", hint="merge them into CIDRs or ranges")
        if self.early_limit is not None and addresses > self.early_limit:
            raise _too_many(addresses, self.early_limit)
        self.out.runs += runs

    def _add4(self, token: str, lo: int, hi: int) -> None:
        self._charge(token, 1, hi - lo + 1)
        self.out.intervals.append((lo, hi))

    def _add6(self, token: str, lo: int, hi: int) -> None:
        self._charge(token, 1, hi - lo + 1)
        self.out.v6.append((lo, hi))

    def token(self, token: str) -> None:
        raw, token = token, token.strip()
        if not token:
            raise InvalidTarget(raw, "empty target")
        if not token.isascii():
            char = next(c for c in token if not c.isascii())
            raise InvalidTarget(token, f"character U+{ord(char):04X} is not ASCII (digits are 0-9)")
        if "," in token and not _NUMERIC.fullmatch(token):
            raise _CommaList()
        if "%" in token:
            self._charge(token, 1, 1)
            self.out.scoped.append(scoped_target(token))
        elif ":" in token:
            self._add6(token, *_v6_interval(token))
        elif "/" in token:
            self._cidr(token)
        elif (full := _FULL_RANGE.fullmatch(token)) and _DOTTED.fullmatch(full.group(1)):
            lo, hi = _strict_address(full.group(1), token), _strict_address(full.group(2), token)
            if hi < lo:
                raise InvalidTarget(token, "range end is below its start")
            self._add4(token, lo, hi)
        elif _NUMERIC.fullmatch(token):
            self._pattern(token)
        else:
            self._name(token, token, None)

    def _pattern(self, token: str) -> None:
        if "," in token and token.count(".") != 3:
            raise _CommaList()
        try:
            sets = _pattern_sets(token)
        except InvalidTarget:
            if "," in token:
                raise _CommaList() from None
            raise
        widths = [sum(hi - lo + 1 for lo, hi in s) for s in sets]
        runs = widths[0] * widths[1] * widths[2] * len(sets[3])
        if self.out.runs + runs > MAX_RUNS:
            why = f"more than {MAX_RUNS:,}" if runs > MAX_RUNS else f"with the specs before it, more than {MAX_RUNS:,} in all"
            raise InvalidTarget(token, f"pattern is {runs:,} separate runs; {why}",
                                hint="use CIDRs or full ranges (198.18.0.0/16, 198.18.0.1-198.18.9.254) instead")
        self._charge(token, runs, math.prod(widths))
        self.out.intervals.extend(_expand_pattern(sets))

    def _cidr(self, token: str) -> None:
        base, _, prefix_s = token.partition("/")
        if "/" in prefix_s:
            raise InvalidTarget(token, "more than one '/'")
        if _NUMERIC.fullmatch(base):
            prefix = _prefix(prefix_s, token, 32)
            start = _strict_address(base, token)
            host = (1 << (32 - prefix)) - 1
            self._add4(token, start & ~host, (start & ~host) | host)
        else:
            self._name(base, token, _prefix(prefix_s, token, 128))

    def _name(self, name: str, token: str, prefix: int | None) -> None:
        try:
            version, value = _resolve(name, token, self.resolver)
        except _Unresolved as exc:
            if self.names_must_resolve:
                raise InvalidTarget(exc.token, exc.reason, hint="an exclusion must resolve, or give its address") from None
            self.out.warnings.append(TargetWarning(exc.token, exc.reason))
            return
        label = name.rstrip(".")
        if version == 4:
            if prefix is not None and prefix > 32:
                raise InvalidTarget(token, f"prefix /{prefix} is over 32 ({label} is IPv4)")
            host = (1 << (32 - (32 if prefix is None else prefix))) - 1
            self._add4(token, value & ~host, (value & ~host) | host)
            if prefix is None:
                self.out.names[value] = label
        else:
            text = int_to_ip6(value) + ("" if prefix is None else f"/{prefix}")
            self._add6(token, *_v6_interval(token, text))
            if prefix is None:
                self.out.names6[value] = label


def _pattern_sets(token: str) -> list[list[Interval]]:
    parts = token.split(".")
    if len(parts) != 4:
        raise InvalidTarget(token, f"an IPv4 address has 4 octets, this has {len(parts)}")
    return [_octet_set(p, token) for p in parts]


def _expand_pattern(sets: list[list[Interval]]) -> list[Interval]:
    """nmap octet pattern → intervals (the last octet stays a run); callers count the runs first."""
    prefixes = [0]
    for octet_runs in sets[:3]:
        prefixes = [(p << 8) | v for p in prefixes for lo, hi in octet_runs for v in range(lo, hi + 1)]
    return [((p << 8) | lo, (p << 8) | hi) for p in prefixes for lo, hi in sets[3]]


def parse_specs(specs: Iterable[str], *, resolver: Resolver | None = None) -> _Parsed:
    """Parse specs (whitespace- or comma-separated) into runs, scoped targets, names and warnings."""
    return _Parser(resolver or system_resolver).parse(specs)


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


# --- target files ---------------------------------------------------------------------------


def read_spec_file(path: str) -> list[str]:
    """One spec a line, ``#`` comments, ``-`` for stdin. UTF-8 (a BOM is skipped), bounded in line and size."""
    label = "standard input" if path == "-" else repr(path)
    try:
        if path == "-":
            stream = getattr(sys.stdin, "buffer", None)
            if stream is None:  # an already-decoded text stream (embedding, tests)
                lines: Iterable[tuple[int, str]] = enumerate(sys.stdin.read(MAX_FILE_BYTES).splitlines(), 1)
                return _specs_of(lines)
            return _specs_of(_decoded_lines(stream, label))
        with open(path, "rb") as f:
            return _specs_of(_decoded_lines(f, label))
    except OSError as exc:
        raise InputError(f"cannot read target file {label}: {exc.strerror or exc}", hint="check the path") from None


def _specs_of(lines: Iterable[tuple[int, str]]) -> list[str]:
    specs = []
    for _, line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            specs.append(line)
    return specs


def _decoded_lines(stream: BinaryIO, label: str) -> Iterator[tuple[int, str]]:
    total = 0
    for number in itertools.count(1):
        raw = stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        total += len(raw)
        if total > MAX_FILE_BYTES:
            raise InputError(f"target file {label} is over {MAX_FILE_BYTES >> 20} MiB",
                             hint="split it, or merge its addresses into ranges or CIDRs")
        if len(raw) > MAX_LINE_BYTES:
            raise InputError(f"target file {label}: line {number} is longer than {MAX_LINE_BYTES:,} bytes", hint="give one spec a line")
        if number == 1 and raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
            raise InputError(f"target file {label} is UTF-16", hint="save it as UTF-8 (or ASCII)")
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if b"\x00" in raw:
            raise InputError(f"target file {label}: line {number} holds a NUL byte; it is not a text file",
                             hint="save it as UTF-8 text, one spec a line")
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(f"target file {label}: line {number} is not UTF-8 text", hint="save it as UTF-8 (or ASCII)") from None


# --- the set --------------------------------------------------------------------------------


class _Runs:
    """Merged inclusive intervals of integers: size, membership, indexing and the seeded order."""

    __slots__ = ("_cum", "_intervals", "_size", "_starts")

    def __init__(self, intervals: Iterable[Interval] = ()) -> None:
        self._intervals: list[Interval] = _merge(intervals)
        self._starts = [lo for lo, _ in self._intervals]
        self._cum: list[int] = []
        total = 0
        for lo, hi in self._intervals:
            self._cum.append(total)
            total += hi - lo + 1
        self._size = total

    def __len__(self) -> int:
        return self._size

    @property
    def intervals(self) -> list[Interval]:
        return list(self._intervals)

    def contains_int(self, value: int) -> bool:
        i = bisect.bisect_right(self._starts, value) - 1
        return i >= 0 and value <= self._intervals[i][1]

    def int_at(self, index: int) -> int:
        if index < 0:
            index += self._size
        if not 0 <= index < self._size:
            raise IndexError(index)
        i = bisect.bisect_right(self._cum, index) - 1
        return self._intervals[i][0] + index - self._cum[i]

    def ints(self) -> Iterator[int]:
        for lo, hi in self._intervals:
            yield from range(lo, hi + 1)

    def order(self, seed: int | None = None, shard: tuple[int, int] = (1, 1)) -> Iterator[int]:
        """Addresses (as ints) in a seeded pseudo-random order, zmap-style.

        The walk is the affine bijection ``i -> (a*i + b) mod n`` with
        ``gcd(a, n) == 1``; shard ``k/N`` takes the positions ``i ≡ k-1 (mod N)``,
        so shards are disjoint and together complete. ``seed=None`` walks in
        address order. IPv4 and IPv6 runs walk the same way.
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

    def position(self, value: int, seed: int | None = None, shard: tuple[int, int] = (1, 1)) -> int | None:
        """The inverse of ``order``: where ``value`` comes in ``order(seed, shard)``; None when it is not there.

        No table: the address's rank in the runs, then the affine walk undone (``Walk.index``). Callers that
        ask for many addresses keep one ``walk(seed, shard)`` instead, which inverts the step once.
        """
        return self.walk(seed, shard).index(value)

    def rank(self, value: int) -> int | None:
        """The rank of ``value`` in the set (what ``int_at`` takes), or None when it is not a member."""
        i = bisect.bisect_right(self._starts, value) - 1
        if i < 0 or value > self._intervals[i][1]:
            return None
        return self._cum[i] + value - self._intervals[i][0]

    def walk(self, seed: int | None = None, shard: tuple[int, int] = (1, 1)) -> Walk:
        """``order(seed, shard)`` as an object that also maps an address back to its place in the walk."""
        return Walk(self, seed, shard)


class Walk:
    """Shard k/N of a set's seeded order, both ways, in constant memory (no address table).

    Iterating gives the addresses as ``order(seed, shard)`` does; ``index(value)`` is the place of an
    address in that iteration (the affine step inverted: ``j = (p - b) * a⁻¹ mod n``), or None when the
    address is not in this shard; ``by_address()`` gives (address, index) in address order.
    """

    __slots__ = ("_inv", "a", "b", "runs", "seed", "shard")

    def __init__(self, runs: _Runs, seed: int | None, shard: tuple[int, int]) -> None:
        k, total = shard
        if not (1 <= k <= total):
            raise InvalidOption("--shard", f"{k}/{total}", "use I/N with 1 <= I <= N")
        self.runs, self.seed, self.shard = runs, seed, shard
        n = len(runs)
        self.a, self.b = (1, 0) if seed is None or n == 0 else _affine(n, seed)
        self._inv = pow(self.a, -1, n) if n > 1 else 0

    def __len__(self) -> int:
        k, total = self.shard
        return len(range(k - 1, len(self.runs), total))

    def __iter__(self) -> Iterator[int]:
        return self.runs.order(self.seed, self.shard)

    def index(self, value: int) -> int | None:
        p = self.runs.rank(value)
        if p is None:
            return None
        j = p if self.seed is None else ((p - self.b) * self._inv) % len(self.runs)
        k, total = self.shard
        return j // total if j % total == k - 1 else None

    def by_address(self) -> Iterator[tuple[int, int]]:
        """(address, index in the walk) for every address of this shard, in address order."""
        k, total = self.shard
        n, b, inv, identity = len(self.runs), self.b, self._inv, self.seed is None
        for p, value in enumerate(self.runs.ints()):
            j = p if identity else ((p - b) * inv) % n
            if j % total == k - 1:
                yield value, j // total


class V6Targets(_Runs, Sequence[int]):
    """The IPv6 part of a TargetSet: 128-bit ints as merged runs, ordered and sharded as IPv4 is."""

    __slots__ = ("names",)

    def __init__(self, intervals: Iterable[Interval] = (), names: dict[int, str] | None = None) -> None:
        super().__init__(intervals)
        self.names: dict[int, str] = {k: v for k, v in (names or {}).items() if self.contains_int(k)}

    @overload
    def __getitem__(self, index: int) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> list[int]: ...
    def __getitem__(self, index: int | slice) -> int | list[int]:
        if isinstance(index, slice):
            return [self.int_at(i) for i in range(*index.indices(self._size))]
        return self.int_at(index)

    def __iter__(self) -> Iterator[int]:
        return self.ints()

    def __contains__(self, address: object) -> bool:
        if isinstance(address, int):
            return self.contains_int(address)
        if isinstance(address, str) and ":" in address:
            try:
                return self.contains_int(int(ipaddress.IPv6Address(address)))
            except ValueError:
                return False
        return False

    def addresses(self) -> Iterator[str]:
        """The addresses as compressed text, in address order."""
        return (int_to_ip6(v) for v in self.ints())

    def exclude(self, other: V6Targets) -> V6Targets:
        return V6Targets(_subtract(self._intervals, other._intervals), self.names)

    def __repr__(self) -> str:
        return f"V6Targets(size={self._size}, runs={len(self._intervals)})"


class TargetSet(_Runs, Sequence[str]):
    """An ordered, de-duplicated set of IPv4 addresses held as intervals, plus the IPv6 part.

    ``len()`` is known without iterating; ``ints()`` walks in address order;
    ``order(seed, shard)`` walks a seeded permutation (a bijection on indices).
    ``v6`` holds the IPv6 runs (same API, 128-bit ints), ``scoped`` the targets
    bound to an interface (``fe80::1%eth0``, multicast ``ff02::1%eth0``), and
    ``warnings`` the names that were skipped. ``total`` counts all three kinds.
    """

    __slots__ = ("names", "scoped", "v6", "warnings")

    def __init__(self, intervals: Iterable[Interval] = (), names: dict[int, str] | None = None, *,
                 v6: V6Targets | None = None, scoped: Iterable[ScopedTarget] = (),
                 warnings: Iterable[TargetWarning] = ()) -> None:
        super().__init__(intervals)
        self.names: dict[int, str] = {k: v for k, v in (names or {}).items() if self.contains_int(k)}
        self.v6: V6Targets = v6 if v6 is not None else V6Targets()
        self.scoped: tuple[ScopedTarget, ...] = tuple(dict.fromkeys(scoped))
        self.warnings: tuple[TargetWarning, ...] = tuple(warnings)

    @property
    def total(self) -> int:
        """IPv4 addresses + IPv6 addresses + scoped targets."""
        return self._size + len(self.v6) + len(self.scoped)

    def count(self, shard: tuple[int, int] = (1, 1)) -> int:
        """How many targets a sweep of shard k/N holds: its IPv4 and IPv6 positions (``order``), and the scoped
        targets, which go with shard 1 (as ``engine6.Prober6.sweep`` takes them)."""
        k, n = shard
        return len(range(k - 1, self._size, n)) + len(range(k - 1, len(self.v6), n)) + (len(self.scoped) if k == 1 else 0)

    def __contains__(self, address: object) -> bool:
        if isinstance(address, int):
            return self.contains_int(address)
        value = _dotted_value(address)
        return value is not None and self.contains_int(value)

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [int_to_ip(self.int_at(i)) for i in range(*index.indices(self._size))]
        return int_to_ip(self.int_at(index))

    def __iter__(self) -> Iterator[str]:
        for value in self.ints():
            yield int_to_ip(value)

    def widest_address(self) -> int:
        """The length of the widest address a list of this set's hosts can hold (a column's width): 15, the widest
        IPv4 address, or more for IPv6: a range's widest compressed text (read from its bounds, ``_widest_text``;
        39 for a range over 65,536 addresses), a scoped address as written, a group's members as their link-local addresses with the
        scope (``fe80::ffff:ffff:ffff:ffff%IFACE``)."""
        width = 15
        for lo, hi in self.v6.intervals:
            width = max(width, 39 if hi - lo >= 1 << 16 else _widest_text(lo, hi))
        for s in self.scoped:
            width = max(width, (len("fe80::ffff:ffff:ffff:ffff") if s.multicast else len(s.address)) + 1 + len(s.interface))
        return width

    def exclude(self, other: TargetSet) -> TargetSet:
        """This set without ``other``'s IPv4 and IPv6 addresses and scoped targets."""
        cut = {(s.address, s.ifindex) for s in other.scoped}
        return TargetSet(_subtract(self._intervals, other._intervals), self.names, v6=self.v6.exclude(other.v6),
                         scoped=[s for s in self.scoped if (s.address, s.ifindex) not in cut], warnings=self.warnings)

    def __repr__(self) -> str:
        extra = f", v6={len(self.v6)}, scoped={len(self.scoped)}" if self.total != self._size else ""
        return f"TargetSet(size={self._size}, runs={len(self._intervals)}{extra})"


def _widest_text(lo: int, hi: int) -> int:
    """The length of the widest text (``int_to_ip6``) of an address in [lo, hi], read from two addresses of each
    /112 the range meets, not from all. Within one /112 the text differs only in the last group g, and for every
    g > 0 inet_ntop compresses the same zero run and writes the same form, so g's own text sets the width: hex, or
    the last two octets of a dotted tail (``::ffff:198.18.0.10``); g = 0 is never wider than g = 1. Either is widest
    at the top of g's 256-block (low byte 0xff) and widens from block to block, so the widest of a piece is its
    last address or the top of the block before that address's (when the piece reaches back into it)."""
    width = 0
    while lo <= hi:
        end = min(hi, lo | 0xFFFF)
        width = max(width, len(int_to_ip6(max(lo, (end & ~0xFF) - 1))), len(int_to_ip6(end)))
        lo = end + 1
    return width


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


# --- shards ---------------------------------------------------------------------------------

_SHARD_FORMS = "use --shard I/N (1-based, 1 <= I <= N), or zmap's --shards N --shard I (0-based, 0 <= I < N)"


def _shard_number(text: str, option: str, whole: str) -> int:
    if not _DEC.fullmatch(text) or len(text) > 5 or int(text) > MAX_SHARDS:
        raise InvalidOption(option, _short(whole), f"{_SHARD_FORMS}, N at most {MAX_SHARDS:,}")
    return int(text)


def parse_shard(text: str | None, shards: str | int | None = None) -> tuple[int, int]:
    """The shard to probe, as (I, N) with 1 <= I <= N (what ``TargetSet.order`` takes).

    Two spellings, never mixed: ``--shard I/N`` (1-based, recon's) and
    ``--shards N --shard I`` (0-based, zmap's). Nothing given: (1, 1).
    """
    if shards is None:
        if text is None:
            return 1, 1
        i_s, sep, n_s = text.partition("/")
        if not sep:
            raise InvalidOption("--shard", _short(text), f"{_SHARD_FORMS}; a bare I needs --shards N")
        i, n = _shard_number(i_s, "--shard", text), _shard_number(n_s, "--shard", text)
        if not 1 <= i <= n:
            raise InvalidOption("--shard", text, "use I/N with 1 <= I <= N, e.g. 1/4 (or --shards N --shard I, 0-based)")
        return i, n
    n = _shard_number(str(shards), "--shards", str(shards))
    if text is None:
        raise InvalidOption("--shards", n, "also give --shard I, 0-based (0 <= I < N), as zmap")
    if "/" in text:
        raise InvalidOption("--shard", text, "with --shards N, --shard is one 0-based number I (0 <= I < N); "
                            "or drop --shards and give I/N (1-based)")
    i = _shard_number(text, "--shard", text)
    if n < 1 or i >= n:
        raise InvalidOption("--shard", f"{i} of --shards {n}", "0-based: 0 <= I < N, as zmap")
    return i + 1, n


# --- everything the CLI takes ---------------------------------------------------------------


def build_targets(
    specs: Sequence[str] = (),
    *,
    input_file: str | None = None,
    exclude: Sequence[str] = (),
    exclude_file: str | None = None,
    yes: bool = False,
    limit: int = MAX_WITHOUT_YES,
    resolver: Resolver | None = None,
) -> TargetSet:
    """Everything the CLI takes about targets → one TargetSet, or InvalidTarget/InputError.

    Names that do not resolve become ``TargetSet.warnings`` while anything else is
    left; ``resolver`` replaces the system resolver (``name -> addresses``).
    """
    resolve = resolver or system_resolver
    all_specs = list(specs)
    if input_file is not None:
        all_specs.extend(read_spec_file(input_file))
    if not all_specs:
        raise InputError("no targets given", hint="name at least one address, range, CIDR or hostname")
    excluded_specs = list(exclude)
    if exclude_file is not None:
        excluded_specs.extend(read_spec_file(exclude_file))
    early = None if yes or excluded_specs else limit
    targets = _Parser(resolve, early_limit=early).parse(all_specs).target_set()
    if targets.total == 0:
        raise _nothing_resolved(targets.warnings)
    if excluded_specs:
        targets = targets.exclude(_Parser(resolve, names_must_resolve=True).parse(excluded_specs).target_set())
        if targets.total == 0:
            raise InputError("no targets left after exclusions", hint="check --exclude")
    if targets.total > limit and not yes:
        raise _too_many(targets.total, limit)
    return targets


def _nothing_resolved(warnings: Sequence[TargetWarning]) -> InputError:
    if len(warnings) == 1:
        return InvalidTarget(warnings[0].target, warnings[0].reason, hint="check the spelling or give an address")
    shown = ", ".join(repr(_short(w.target)) for w in warnings[:3]) + (", …" if len(warnings) > 3 else "")
    return InputError(f"none of the {len(warnings)} target names resolves ({shown})", hint="check the spelling or give addresses")
