"""Typed results. Frozen dataclasses; the library returns these and never prints.

Sections per capability keep parallel work apart; shared types come first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar, final

__all__ = [
    "ChecksumCheck",
    "CraftField",
    "CraftResult",
    "CraftSpec",
    "CraftedPacket",
    "DecodedPacket",
    "DeviceState",
    "Event",
    "HookFailed",
    "HostResult",
    "IPHeader",
    "IPOption",
    "IPv6Header",
    "KernelRewrite",
    "LabHost",
    "LabInfo",
    "LabRange",
    "LabService",
    "NotifierMissing",
    "PingError",
    "PingPending",
    "PingReply",
    "PingSent",
    "PingStart",
    "PingStats",
    "ScopedTarget",
    "ShardStats",
    "StateSetAside",
    "SweepResult",
    "SweepStats",
    "TargetWarning",
    "WatchNote",
    "WatchRound",
    "WorkerStats",
    "as_dict",
    "from_dict",
]

_T = TypeVar("_T")
_JSON_KINDS: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,)}


def as_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as a plain dict (for JSON/CSV rendering)."""
    return asdict(obj)


def from_dict(cls: type[_T], data: Any) -> _T:
    """``as_dict``'s inverse for a flat dataclass of str, int, float and bool fields (``X | None`` too), read
    back from a file: ValueError unless every key is a field and every value has its field's type."""
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__}: not an object")
    kinds = {f.name: str(f.type).split(" | ") for f in fields(cls)}  # type: ignore[arg-type]  # cls is a dataclass; TypeVar cannot say so
    for key, value in data.items():
        allowed = kinds.get(key)
        if allowed is None:
            raise ValueError(f"{cls.__name__}: no field {key!r}")
        if value is None and "None" in allowed:
            continue
        if (isinstance(value, bool) and "bool" not in allowed) or not any(isinstance(value, _JSON_KINDS.get(k, ())) for k in allowed):
            raise ValueError(f"{cls.__name__}.{key}: {type(value).__name__} is not {' | '.join(allowed)}")
    try:
        return cls(**data)
    except TypeError as exc:  # a required field is missing
        raise ValueError(f"{cls.__name__}: {exc}") from None


# --- shared: hosts -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HostResult:
    """One probed address. ``status`` is one of up, down, unreachable."""

    address: str
    status: str
    rtt_ms: float | None = None
    ttl: int | None = None
    reply: str | None = None  # echo-reply, timestamp-reply, arp-reply, host-unreachable, ...
    mac: str | None = None
    vendor: str | None = None
    hostname: str | None = None
    reporter: str | None = None  # the router that reported unreachable / time exceeded
    reason: str | None = None  # what answered: echo-reply, syn-ack, rst, timestamp-reply, arp-reply, udp-reply, port-unreachable, ...


# --- targets ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TargetWarning:
    """A target that was skipped (a name that does not resolve) while the rest is swept, as nmap does."""

    target: str
    reason: str


@dataclass(frozen=True, slots=True)
class ScopedTarget:
    """An IPv6 target bound to an interface: ``fe80::1%eth0`` or the multicast group ``ff02::1%eth0``.

    A multicast target is one probe to the group (every member answers), never expanded.
    """

    address: str  # compressed IPv6, without the scope
    interface: str
    ifindex: int
    multicast: bool = False

    def __str__(self) -> str:
        return f"{self.address}%{self.interface}"


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
    ipv6_ll: str = ""  # its link-local address (EUI-64 from the MAC), fe80::…


@dataclass(frozen=True, slots=True)
class LabService:
    """A listening socket in the lab: ``proto`` tcp (SYN gets SYN-ACK) or udp (any datagram is echoed back)."""

    address: str
    proto: str
    port: int


@dataclass(frozen=True, slots=True)
class LabRange:
    """A range in the lab and which of its addresses answer, to what.

    ``answers`` names what every address in ``up`` answers (and nothing else in the range
    does): ``echo`` (ICMP/ICMPv6 echo), ``timestamp`` (ICMP timestamp), ``tcp-rst`` (the
    kernel answers a TCP SYN to a closed port, and any ACK, with RST), ``udp-unreach`` (a
    UDP datagram to a closed port gets ICMP port unreachable from the address itself),
    ``mcast-echo`` (echo to ff02::1 on the link), ``ns`` (Neighbor Solicitation).
    ``services`` are listening sockets on some of the ``up`` addresses. ``on_link`` is the
    scanner's interface for a range on its own link ("" when routed); ``netns`` is the
    namespace the addresses live in.
    """

    name: str
    cidr: str
    up: tuple[str, ...] | None  # None: every address answers (AnyIP)
    note: str = ""
    family: int = 4
    answers: tuple[str, ...] = ()
    services: tuple[LabService, ...] = ()
    on_link: str = ""
    netns: str = ""

    def up_count(self) -> int:
        import ipaddress

        return ipaddress.ip_network(self.cidr).num_addresses if self.up is None else len(self.up)

    def is_up(self, address: str) -> bool:
        """Whether ``address`` answers (what to, see ``answers``)."""
        import ipaddress

        if self.up is not None:
            return ipaddress.ip_address(address) in {ipaddress.ip_address(a) for a in self.up}
        return ipaddress.ip_address(address) in ipaddress.ip_network(self.cidr)


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
    fw_ns: str = ""  # the firewalled hosts (198.18.6.0/24 drops echo, 198.18.7.0/24 drops all ICMP)
    scanner_ipv6_ll: str = ""
    router_ipv6_ll: str = ""
    # The router forwards IPv6, so the kernel gives its LAN link the subnet-router anycast
    # address (RFC 4291 2.6.1): it answers NS with the router's MAC, and an echo to it is
    # answered from 2001:db8::1. Not listed in the lan6 range's ``up``.
    router_anycast6: str = ""
    owner_uid: int | None = None  # who brought it up (the sudo caller's uid under sudo)

    def range(self, name: str) -> LabRange:
        for r in self.ranges:
            if r.name == name:
                return r
        raise KeyError(name)


# --- craft ------------------------------------------------------------------------------



@dataclass(frozen=True, slots=True)
class CraftSpec:
    """Every field of a hand-built IPv4 packet, already typed (``recon.craft.parse_spec`` builds it).

    ``checksum`` and ``total_length`` are None for "compute it"; ``payload`` is one of
    icmp, udp, tcp, raw. ``data`` is the payload after the ICMP/UDP/TCP header (or the
    whole IP payload for raw).
    """

    dst: str
    src: str
    tos: int = 0
    ident: int = 1
    ttl: int = 64
    df: bool = False
    mf: bool = False
    frag_offset: int = 0
    proto: int | None = None  # None: follows the payload (1, 17, 6, 253 for raw)
    options: bytes = b""
    checksum: int | None = None
    total_length: int | None = None
    payload: str = "icmp"
    icmp_type: int = 8
    icmp_code: int = 0
    icmp_id: int = 0
    icmp_seq: int = 0
    sport: int = 0
    dport: int = 0
    tcp_flags: str = "S"
    tcp_seq: int = 0
    tcp_ack: int = 0
    tcp_window: int = 8192
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class CraftField:
    """One header field: where it sits (byte ``offset``, ``length`` bytes, ``bits`` within them)."""

    layer: str  # ip, icmp, udp, tcp, data
    name: str
    value: str  # for humans: "64", "DF", "198.18.0.11", "0xb1e6 (ok)"
    number: int | None  # the numeric value, when the field is a number
    hex: str  # the field's value in hex (bit fields: the value, not the whole byte)
    offset: int
    length: int
    bits: str | None = None  # e.g. "0-3" (bit 0 = most significant) for sub-byte fields


@dataclass(frozen=True, slots=True)
class ChecksumCheck:
    """A checksum as built, the value that would be correct, and whether they agree."""

    layer: str
    offset: int
    value: int
    correct: int

    @property
    def ok(self) -> bool:
        return self.value == self.correct


@dataclass(frozen=True, slots=True)
class CraftedPacket:
    """The built bytes and their anatomy."""

    data: bytes
    fields: tuple[CraftField, ...]
    checksums: tuple[ChecksumCheck, ...]
    src: str
    dst: str
    proto: int
    header_length: int


@dataclass(frozen=True, slots=True)
class KernelRewrite:
    """One field Linux changes in an IP_HDRINCL packet (net/ipv4/raw.c ``raw_send_hdrinc``).

    ``field`` is ``total length``, ``id``, ``source`` or ``header checksum``; ``before`` is the
    value as built; ``after`` the value on the wire, or None when the kernel chooses it
    (an id, the route's source address, a checksum over fields it fills in)."""

    field: str
    before: int | str
    after: int | None = None


@dataclass(frozen=True, slots=True)
class CraftResult:
    """What ``recon.craft.craft`` built and how it went on the wire.

    ``via`` is raw (IPPROTO_RAW + IP_HDRINCL), l2 (AF_PACKET, the bytes untouched),
    scapy (Scapy ``send()``) or none (dry run); ``requested`` is what the caller asked for
    (``auto`` picks raw or l2). ``rewrites`` lists what the Linux kernel would change in
    these bytes on the raw path; ``kernel_rewrites`` those that really happened (or would,
    in a dry run), so the wire differs from ``packet.data``.
    """

    packet: CraftedPacket
    via: str
    sent: int
    requested: str = "auto"
    rewrites: tuple[KernelRewrite, ...] = ()
    interface: str | None = None
    next_hop_mac: str | None = None
    pcap: str | None = None
    pcap_written: int = 0
    interrupted: bool = False  # Ctrl-C stopped a --count run early

    @property
    def kernel_rewrites(self) -> tuple[KernelRewrite, ...]:
        return self.rewrites if self.via in ("raw", "none") else ()

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
    pattern: bytes | None = None  # ping -p: the fill pattern, shown as "PATTERN: 0x..."
    multicast: bool = False  # every host on the link answers (ff02::1%eth0)


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
    """An ICMP error about one of our probes, or a local send error. Typed, not worded:
    render.ping_error_message says it as iputils does ("Time to live exceeded")."""

    seq: int | None
    kind: str  # time-exceeded, host-unreachable, net-unreachable, frag-needed, message-too-long, local, ...
    reporter: str | None  # the router that answered (None for local errors)
    reporter_name: str | None
    icmp_type: int | None
    icmp_code: int | None
    mtu: int | None
    local: bool
    timestamp: float
    version: int = 4  # 4: ICMP, 6: ICMPv6 (the two word their errors differently)
    info: int | None = None  # the error's rest-of-header value (parameter problem: the pointer)
    detail: str | None = None  # a local error's strerror


@dataclass(frozen=True, slots=True)
class PingSent:
    """ping -f: one probe left (yielded only when flooding, for the '.' per probe)."""

    seq: int


@dataclass(frozen=True, slots=True)
class PingPending:
    """ping -O: the previous probe is still unanswered when the next one is due."""

    seq: int
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
    time_us: int | None = None  # first to last probe in µs (ping's ipg = time_us / (transmitted − 1))
    interval_us: int | None = None  # the send interval (0 when flooding: then ping shows ipg/ewma)

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



# --- sniff ------------------------------------------------------------------------------
# IPHeader, IPv6Header and DecodedPacket are frozen but not slotted: recon.decode builds them by
# setting ``__dict__`` in one step (0.5 µs instead of 1.3 µs per object here; decode speed is a target).


@dataclass(frozen=True)
class IPOption:
    """One IPv4 option: ``name`` is EOL, NOP, RR, TS, LSRR, SSRR, RA, … or ``opt-N``.

    ``addresses`` holds the route of RR/LSRR/SSRR (and TS flag 1/3 addresses);
    ``timestamps`` the TS values; ``pointer`` the RR/SRR/TS pointer byte.
    """

    kind: int
    name: str
    length: int
    data: bytes = b""
    pointer: int | None = None
    addresses: tuple[str, ...] = ()
    timestamps: tuple[int, ...] = ()
    overflow: int | None = None  # TS overflow counter
    ts_flag: int | None = None  # TS flag: 0 timestamps, 1 address+timestamp, 3 prespecified


@final  # no subclasses: render tells the two headers apart by `type(ip) is IPHeader` (fast, and mypy narrows)
@dataclass(frozen=True)
class IPHeader:
    """An IPv4 header as found on the wire (every field, plus whether its checksum verifies)."""

    version: int
    ihl: int  # in 32-bit words
    tos: int
    total_length: int
    id: int
    flags: int  # 3 bits: 0x4 reserved/evil, 0x2 DF, 0x1 MF
    frag_offset: int  # in 8-byte units, as the header carries it
    ttl: int
    proto: int
    checksum: int
    checksum_ok: bool | None  # None: header truncated, not verifiable
    src: str
    dst: str
    options: tuple[IPOption, ...] = ()

    @property
    def dscp(self) -> int:
        return self.tos >> 2

    @property
    def ecn(self) -> int:
        return self.tos & 3

    @property
    def df(self) -> bool:
        return bool(self.flags & 2)

    @property
    def mf(self) -> bool:
        return bool(self.flags & 1)


@final
@dataclass(frozen=True)
class IPv6Header:
    """An IPv6 fixed header, with the extension headers walked to the upper-layer protocol."""

    version: int
    traffic_class: int
    flow_label: int
    payload_length: int
    next_header: int  # the fixed header's field
    hop_limit: int
    src: str
    dst: str
    extensions: tuple[str, ...] = ()  # e.g. ("hop-by-hop", "fragment")
    upper_proto: int | None = None  # after the extension headers (None: not reached)
    frag_offset: int | None = None  # from a Fragment header, in 8-byte units
    mf: bool | None = None
    frag_id: int | None = None

    @property
    def dscp(self) -> int:
        return self.traffic_class >> 2

    @property
    def ecn(self) -> int:
        return self.traffic_class & 3


@dataclass(frozen=True)
class DecodedPacket:
    """One captured frame: its link layer, its IP header (if any), the L4 summary and every problem found.

    ``problems`` lists what is wrong or unusual (truncated, ihl < 5, length mismatch, bad checksum,
    fragment, non-IP, …); decoding never raises, it reports.
    """

    frame: int  # 1-based index in the capture or live stream
    time_ns: int
    linktype: int
    caplen: int
    wirelen: int
    ethertype: int | None
    ip: IPHeader | IPv6Header | None
    icmp_type: int | None = None
    icmp_code: int | None = None
    sport: int | None = None
    dport: int | None = None
    problems: tuple[str, ...] = ()
    vlans: tuple[int, ...] = ()
    interface: str | None = None
    data: bytes = b""  # the whole captured frame (for --hex)
    icmp_id: int | None = None  # echo, timestamp, information and mask messages (ICMP and ICMPv6 echo)
    icmp_seq: int | None = None
    l4_offset: int | None = None  # where the ICMP/TCP/UDP header starts in ``data`` (None: not reached)


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
    interrupted: bool = False  # stopped early (Ctrl-C): only what was decided by then was reported


@dataclass(frozen=True, slots=True)
class ShardStats:
    """One shard of a sweep run on a cluster (``recon sweep --cluster``): who swept it and what it cost.

    ``shard`` of ``shards`` is the slice of the seeded permutation (``TargetSet.order``); ``worker``
    is the Dask worker's address and ``host`` its host name (the vantage point the shard was seen from).
    """

    shard: int
    shards: int
    worker: str
    host: str
    targets: int
    up: int
    sent: int
    received: int
    duration_s: float
    resumed: bool = False  # read back from a --resume journal, not swept in this run


@dataclass(frozen=True, slots=True)
class WorkerStats:
    """One worker's share of a cluster sweep (``recon sweep --cluster``): the shards it swept in this run, added up.
    ``duration_s`` is the time it spent sweeping them (the sum of its shards' times)."""

    worker: str
    host: str
    shards: int
    targets: int
    up: int
    sent: int
    received: int
    duration_s: float


@dataclass(frozen=True, slots=True)
class SweepResult:
    """Every target of a sweep (status up / down / unreachable) and the sweep's counters.

    ``shards``: per-shard statistics when the sweep ran on a cluster (empty for a local sweep).
    """

    hosts: tuple[HostResult, ...]
    stats: SweepStats
    shards: tuple[ShardStats, ...] = ()

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
class StateSetAside:
    """The ``--state`` file could not be used, was renamed to ``aside`` and watching started afresh.

    ``problem``: ``json`` (``detail`` is the parser's message), ``shape`` (no devices list), ``field``
    (``device`` is the 1-based entry, ``field`` the key that failed validation), ``not-utf8``,
    ``too-deep``, ``too-big`` (over ``detail`` bytes) or ``not-regular`` (a FIFO or socket).
    """

    path: str
    aside: str
    problem: str
    device: int | None = None
    field: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class HookFailed:
    """An ``--exec``/``--notify`` hook (``kind`` exec or notify) that did not succeed.

    ``failure``: ``timeout`` (killed after ``timeout`` s), ``oserror`` (could not run: ``error``) or
    ``status`` (exited with ``status``).
    """

    kind: str
    program: str
    failure: str
    status: int | None = None
    timeout: float | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class NotifierMissing:
    """``--notify`` was asked for, but there is no desktop notifier (notify-send) on PATH."""


WatchNote = StateSetAside | HookFailed | NotifierMissing


@dataclass(frozen=True, slots=True)
class WatchRound:
    """One presence round: its number, time, events, the inventory (first round only) and notes."""

    number: int
    time: str
    events: tuple[Event, ...]
    inventory: tuple[DeviceState, ...] | None = None
    up: int = 0
    notes: tuple[WatchNote, ...] = ()
