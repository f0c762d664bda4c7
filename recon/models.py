"""Typed results. Frozen dataclasses; the library returns these and never prints.

Sections per capability keep parallel work apart; shared types come first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["HostResult", "LabHost", "LabRange", "LabInfo", "as_dict", "SweepStats", "SweepResult"]


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


# --- sweep ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SweepStats:
    """Counters of one sweep. ``late``: replies to an earlier attempt or an earlier sweep."""

    targets: int = 0
    sent: int = 0
    received: int = 0
    duplicates: int = 0
    late: int = 0
    retries: int = 0  # probes re-sent to silent targets
    unreachable: int = 0
    ignored: int = 0  # ICMP/ARP that was not an answer to this sweep (other processes)
    send_errors: int = 0
    duration_s: float = 0.0
    pps: float = 0.0  # probes sent per second of sweep time
    engine: str = "raw"
    method: str = "icmp"


@dataclass(frozen=True, slots=True)
class SweepResult:
    """Every target of a sweep (status up / down / unreachable) and the sweep's counters."""

    hosts: tuple[HostResult, ...]
    stats: SweepStats

    @property
    def up(self) -> tuple[HostResult, ...]:
        return tuple(h for h in self.hosts if h.status == "up")

    @property
    def unreachable(self) -> tuple[HostResult, ...]:
        return tuple(h for h in self.hosts if h.status == "unreachable")


# --- watch ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """A change seen by ``recon watch``: UP, DOWN, NEW or MOVED.

    ``time`` is ISO 8601 with a timezone. For MOVED, ``previous`` is the old address (a MAC seen at a
    new IP) or the old MAC (an IP answering with a new MAC).
    """

    event: str
    time: str
    address: str
    mac: str | None = None
    vendor: str | None = None
    hostname: str | None = None
    previous: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceState:
    """One known device: its last address/MAC, when first and last seen, and whether it is up now."""

    address: str
    mac: str | None
    vendor: str | None
    hostname: str | None
    first_seen: str
    last_seen: str
    up: bool = False
    misses: int = 0


@dataclass(frozen=True, slots=True)
class WatchRound:
    """One presence round: its number, time, events, the inventory (first round only) and notes."""

    number: int
    time: str
    events: tuple[Event, ...]
    inventory: tuple[DeviceState, ...] | None = None
    up: int = 0
    notes: tuple[str, ...] = ()
