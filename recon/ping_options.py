"""ping's options and its destination (ARCHITECTURE.md): validated once, frozen, never touched again.

``PingOptions`` holds what the user asked for, checked the way iputils checks it (a bad
value is one ``InvalidOption``, exit 2, before anything is sent). ``resolve`` turns the
target into a ``Destination``: the address, its family, and for scoped IPv6 addresses
(``fe80::1%eth0``, ``ff02::1%eth0``) the interface index the kernel needs.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from recon.errors import InvalidOption, InvalidTarget, check_range

__all__ = ["DEFAULT_LINGER", "MAX_SIZE", "MIN_USER_INTERVAL", "PMTU_MODES", "Destination", "PingOptions",
           "parse_pattern", "resolve"]

MIN_USER_INTERVAL = 0.2  # seconds; below this needs root, as in iputils
DEFAULT_LINGER = 10.0  # seconds to wait after the last probe when nothing answered (iputils MAXWAIT)
MAX_SIZE = 65507
MAX_DEADLINE = 86400.0
PMTU_MODES = ("do", "dont", "want")  # ping -M: IP_PMTUDISC_DO / _DONT / _WANT


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def parse_pattern(text: str) -> bytes:
    """ping -p: up to 16 bytes given as hex digits, two per byte (a lone last digit is a byte of its own)."""
    if any(c not in "0123456789abcdefABCDEF" for c in text):
        raise InvalidOption("-p/--pattern", text, "hex digits only, as ping -p (e.g. ff00)")
    pairs = [text[i:i + 2] for i in range(0, min(len(text), 32), 2)]
    return bytes(int(p, 16) for p in pairs)


@dataclass(frozen=True, slots=True)
class PingOptions:
    """What one ping session does. Construction validates; ``interval`` None means the default
    (1 s, or 0 with ``flood``), ``timeout`` None means iputils' 10 s linger."""

    count: int | None = None
    interval: float | None = None
    deadline: float | None = None
    timeout: float | None = None
    size: int = 56
    ttl: int | None = None
    pmtu: str | None = None
    interface: str | None = None
    source: str | None = None
    family: int | None = None
    pcap: str | None = None
    numeric: bool = False
    outstanding: bool = False
    pattern: bytes | None = None
    flood: bool = False

    def __post_init__(self) -> None:
        if self.count is not None and self.count < 1:
            raise InvalidOption("-c/--count", self.count, "give a whole number of packets, 1 or more")
        check_range("-i/--interval", self.interval, 0, 3600, "seconds between probes, above 0 and at most 3600", above_low=True)
        check_range("-w/--deadline", self.deadline, 0, MAX_DEADLINE, f"seconds, above 0 and at most {MAX_DEADLINE:g}",
                    above_low=True)
        check_range("-W/--timeout", self.timeout, 0, 3600, "seconds to wait for a reply, above 0 and at most 3600", above_low=True)
        if not 0 <= self.size <= MAX_SIZE:
            raise InvalidOption("-s/--size", self.size, f"payload bytes from 0 to {MAX_SIZE}")
        if self.ttl is not None and not 1 <= self.ttl <= 255:
            raise InvalidOption("-t/--ttl", self.ttl, "a hop count from 1 to 255")
        if self.pmtu is not None and self.pmtu not in PMTU_MODES:
            raise InvalidOption("-M", self.pmtu, "do, dont or want, as ping -M")
        if self.pattern is not None and len(self.pattern) > 16:
            raise InvalidOption("-p/--pattern", self.pattern.hex(), "at most 16 bytes (32 hex digits)")
        if self.family not in (None, socket.AF_INET, socket.AF_INET6):
            raise InvalidOption("family", self.family, "AF_INET or AF_INET6")
        self._check_interface_and_source()

    def _check_interface_and_source(self) -> None:
        # -I takes an interface or an address, as in ping(8).
        if self.interface is not None and _is_address(self.interface):
            if self.source is not None:
                raise InvalidOption("-I/--interface", self.interface, "give an interface name when --source is set")
            object.__setattr__(self, "source", self.interface)
            object.__setattr__(self, "interface", None)
        if self.interface is not None:
            try:
                socket.if_nametoindex(self.interface)
            except (OSError, ValueError):
                raise InvalidOption("-I/--interface", self.interface, "no such network interface here") from None
        if self.source is not None:
            if not _is_address(self.source):
                raise InvalidOption("--source", self.source, "an IPv4 or IPv6 address of this machine")
            src_family = socket.AF_INET6 if ":" in self.source else socket.AF_INET
            if self.family is not None and self.family != src_family:
                raise InvalidOption("--source", self.source, "the same address family as -4/-6")
            object.__setattr__(self, "family", self.family or src_family)

    def check_privilege(self, privileged: bool) -> None:
        """iputils' rule for users: no flood, no interval under 200 ms (the kernel does not enforce it; ping does)."""
        if privileged:
            return
        if self.flood:
            raise InvalidOption("-f/--flood", "", f"flooding needs root; the smallest interval for users is "
                                f"{MIN_USER_INTERVAL * 1000:g} ms, as in ping(8)")
        if self.interval is not None and self.interval < MIN_USER_INTERVAL:
            raise InvalidOption("-i/--interval", self.interval,
                                f"intervals below {MIN_USER_INTERVAL:g} s need root, as in ping(8)")

    @property
    def interval_s(self) -> float:
        if self.interval is not None:
            return self.interval
        return 0.0 if self.flood else 1.0

    @property
    def linger_s(self) -> float:
        return self.timeout if self.timeout is not None else DEFAULT_LINGER


@dataclass(frozen=True, slots=True)
class Destination:
    """Where the echo requests go. ``shown`` is the address as ping prints it (with ``%scope``)."""

    host: str
    address: str
    family: int
    numeric: bool  # the target was given as an address
    scope_id: int = 0
    scope: str | None = None
    multicast: bool = False

    @property
    def version(self) -> int:
        return 6 if self.family == socket.AF_INET6 else 4

    @property
    def shown(self) -> str:
        return f"{self.address}%{self.scope}" if self.scope else self.address

    @property
    def sockaddr(self) -> tuple[str, int] | tuple[str, int, int, int]:
        return (self.address, 0, 0, self.scope_id) if self.version == 6 else (self.address, 0)


def _scope_index(host: str, scope: str) -> int:
    """The interface index of ``%scope`` (a name or a number); an unknown one is bad input."""
    if scope.isdigit():
        index = int(scope)
        try:
            socket.if_indextoname(index)
        except (OSError, OverflowError):
            raise InvalidTarget(host, f"no interface with index {scope} here", hint="see 'ip link'") from None
        return index
    try:
        return socket.if_nametoindex(scope)
    except (OSError, ValueError):
        raise InvalidTarget(host, f"unknown scope '{scope}': no such network interface here",
                            hint="give an interface from 'ip link', e.g. fe80::1%eth0") from None


def resolve(host: str, options: PingOptions) -> Destination:
    """The destination for ``host``: an address (scoped IPv6 allowed) or a name resolved once."""
    family = options.family
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        addr = None
    if addr is None:
        from recon.targets import resolve_host

        address = resolve_host(host, family or socket.AF_UNSPEC)
        fam = socket.AF_INET6 if ":" in address else socket.AF_INET
        dest = Destination(host, address.split("%")[0], fam, numeric=False)
    else:
        want = socket.AF_INET6 if addr.version == 6 else socket.AF_INET
        if family is not None and family != want:
            raise InvalidOption("-4/-6", host, f"{host} is an IPv{addr.version} address")
        scope = getattr(addr, "scope_id", None)
        plain = str(addr).split("%")[0]
        dest = Destination(host, plain, want, numeric=True, multicast=addr.is_multicast)
        if scope:
            dest = Destination(host, plain, want, True, _scope_index(host, scope), scope, addr.is_multicast)
        elif want == socket.AF_INET6 and options.interface and (addr.is_link_local or addr.is_multicast):
            # ping -I eth0 fe80::1: the interface is the scope
            dest = Destination(host, plain, want, True, socket.if_nametoindex(options.interface), None, addr.is_multicast)
    src = options.source
    if src is not None and (":" in src) != (dest.family == socket.AF_INET6):
        raise InvalidOption("--source", src, f"{dest.address} needs a source of the same family")
    return dest
