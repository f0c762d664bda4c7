"""Typed results. Frozen dataclasses; the library returns these and never prints.

Sections per capability keep parallel work apart; shared types come first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["HostResult", "LabHost", "LabRange", "LabInfo", "as_dict"]


def as_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as a plain dict (for JSON/CSV rendering)."""
    return asdict(obj)


# --- shared: hosts -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HostResult:
    """One probed address. ``status`` is one of up, down, unreachable (DESIGN.md §5)."""

    address: str
    status: str
    rtt_ms: float | None = None
    ttl: int | None = None
    reply: str | None = None  # echo-reply, timestamp-reply, arp-reply, host-unreachable, ...
    mac: str | None = None
    vendor: str | None = None
    hostname: str | None = None
    reporter: str | None = None  # the router that reported unreachable / time exceeded


# --- lab ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LabHost:
    """A host namespace on the lab's L2 segment."""

    name: str
    netns: str
    ipv4: str
    ipv6: str
    mac: str
    vendor: str
    hostname: str


@dataclass(frozen=True, slots=True)
class LabRange:
    """A routed range behind the lab router and which of its addresses answer."""

    name: str
    cidr: str
    up: tuple[str, ...] | None  # None: every address answers (AnyIP)
    note: str = ""

    def up_count(self) -> int:
        import ipaddress

        return ipaddress.ip_network(self.cidr).num_addresses if self.up is None else len(self.up)


@dataclass(frozen=True)
class LabInfo:
    """The lab's layout and truth: which addresses are up, with their MACs."""

    name: str
    scanner_ns: str
    scanner_ipv4: str
    scanner_ipv6: str
    scanner_mac: str
    scanner_if: str
    router_ns: str
    router_ipv4: str
    router_ipv6: str
    router_mac: str
    far_ns: str
    wan_ns: str
    switch_ns: str
    lan_cidr: str
    lan6_cidr: str
    hosts: tuple[LabHost, ...]
    ranges: tuple[LabRange, ...]
    unreachable_cidr: str
    far_ipv6: str
    namespaces: tuple[str, ...]
    loss: float = 0.0
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    relay_pid: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def range(self, name: str) -> LabRange:
        for r in self.ranges:
            if r.name == name:
                return r
        raise KeyError(name)


# --- ping -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PingStart:
    """What a ping session is about to do (the header line)."""

    host: str
    address: str
    family: int  # 4 or 6
    size: int  # ICMP payload bytes (-s)
    packet_bytes: int  # size + ICMP (+ IPv4) header, as ping's "56(84)"
    numeric: bool  # the target was given as an address
    socket_kind: str  # "raw" or "dgram" (unprivileged ICMP datagram socket)
    source: str | None = None
    interface: str | None = None


@dataclass(frozen=True, slots=True)
class PingReply:
    """One echo reply matched to one of our probes (by id, seq and payload nonce)."""

    seq: int
    address: str
    hostname: str | None
    bytes: int  # ICMP bytes received
    ttl: int | None
    rtt_ms: float | None  # nanosecond-resolution RTT in ms
    rtt_us: int | None  # the same, truncated to µs (what the statistics use, as iputils)
    duplicate: bool
    truncated: bool
    timestamp: float  # wall-clock receive time (kernel timestamp), seconds since the epoch


@dataclass(frozen=True, slots=True)
class PingError:
    """An ICMP error about one of our probes, or a local send error."""

    seq: int | None
    kind: str  # time-exceeded, host-unreachable, net-unreachable, frag-needed, message-too-long, local, ...
    message: str  # iputils wording, e.g. "Time to live exceeded"
    reporter: str | None  # the router that answered (None for local errors)
    reporter_name: str | None
    icmp_type: int | None
    icmp_code: int | None
    mtu: int | None
    local: bool
    timestamp: float


@dataclass(frozen=True, slots=True)
class PingStats:
    """Counters and RTT statistics, computed as iputils does (integer µs; mdev = sqrt(E[rtt²] − E[rtt]²))."""

    host: str
    address: str
    transmitted: int
    received: int
    duplicates: int
    errors: int
    time_ms: int  # first to last probe, as ping's "time Tms"
    rtt_min_us: int | None
    rtt_avg_us: int | None
    rtt_max_us: int | None
    rtt_mdev_us: int | None
    rtt_ewma_us: int | None
    pipe: int
    final: bool = True  # False for a running snapshot (SIGQUIT)

    @property
    def loss_percent(self) -> float:
        if not self.transmitted:
            return 0.0
        return (self.transmitted - self.received) * 100.0 / self.transmitted

    @property
    def rtt_ms(self) -> dict[str, float | None]:
        def ms(v: int | None) -> float | None:
            return None if v is None else v / 1000

        return {"min": ms(self.rtt_min_us), "avg": ms(self.rtt_avg_us), "max": ms(self.rtt_max_us),
                "mdev": ms(self.rtt_mdev_us)}


__all__ += ["PingStart", "PingReply", "PingError", "PingStats"]
