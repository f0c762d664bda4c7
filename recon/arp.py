"""On-link discovery at layer 2: which targets are on a local segment, ARP frames, MAC vendors.

The routing table comes from the kernel of the *current* network namespace
(``/proc/thread-self/net/route``), never from Scapy's ``conf.route``, which is cached at
import and may describe another namespace. An interface's MAC and the address the
kernel uses on its segment come through the transport (recon/transport.py), which
owns every socket and ioctl. Scapy builds the ARP request template once; the engine patches the
target address per probe. Vendors come from Scapy's bundled manuf database.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from recon.errors import InvalidOption
from recon.transport import Transport, default_transport, proc_net

__all__ = [
    "ARP_TPA_OFFSET",
    "ETH_P_ARP",
    "Link",
    "OnLinkRoute",
    "arp_request_template",
    "link",
    "onlink_routes",
    "route_source",
    "routes",
    "vendor",
    "with_sender",
]

ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
ARP_TPA_OFFSET = 38  # Ether(14) + ARP fixed part(8) + sha(6) + spa(4) + tha(6)
_RTF_UP = 0x1
_RTF_GATEWAY = 0x2
_RTF_REJECT = 0x200


@dataclass(frozen=True, slots=True)
class Link:
    """A local interface's layer-2 and IPv4 identity."""

    name: str
    mac: bytes
    address: int  # IPv4 as int
    netmask: int
    sender: int = 0  # the ARP sender protocol address when it is not ``address`` (sweep --source)

    @property
    def mac_str(self) -> str:
        return self.mac.hex(":")

    @property
    def spa(self) -> int:
        """The sender protocol address of our ARP requests (the one replies are addressed to)."""
        return self.sender or self.address


@dataclass(frozen=True, slots=True)
class OnLinkRoute:
    """One kernel route: ``net/mask dev iface [via gateway]``, on-link when it has no gateway."""

    net: int
    mask: int
    iface: str
    onlink: bool
    gateway: int = 0
    metric: int = 0


def route_source(dst: str, transport: Transport | None = None) -> str:
    """The IPv4 source address the kernel would pick for ``dst``; a UDP connect sends nothing. OSError: no route."""
    return (transport or default_transport()).route_source(dst)


def routes(*, usable_only: bool = True) -> list[OnLinkRoute]:
    """The IPv4 routing table of this thread's namespace, longest prefix first; ``usable_only=False`` keeps
    reject routes and routes through lo too (where the sweep needs the table's prefixes, not its links)."""
    out: list[OnLinkRoute] = []
    try:
        lines = proc_net("route").read_text().splitlines()[1:]
    except OSError:
        return out
    for line in lines:
        f = line.split()
        if len(f) < 8:
            continue
        iface, dest, gw, flags, metric, mask = f[0], f[1], f[2], int(f[3], 16), int(f[6]), f[7]
        if usable_only and (not flags & _RTF_UP or flags & _RTF_REJECT or iface in ("lo", "*")):
            continue
        # /proc/net/route prints the addresses as host-order (little-endian) hex
        net, m, g = (struct.unpack("!I", struct.pack("<I", int(x, 16)))[0] for x in (dest, mask, gw))
        out.append(OnLinkRoute(net, m, iface, not flags & _RTF_GATEWAY, g, metric))
    out.sort(key=lambda r: (-bin(r.mask).count("1"), r.metric))
    return out


def link(iface: str, transport: Transport | None = None) -> Link:
    """MAC and IPv4 address of ``iface`` in this namespace (InvalidOption when it has none).

    The address is the one the kernel sends from on the interface's first on-link
    segment (its prefix route), the netmask that route's; no packet is sent.
    """
    t = transport or default_transport()
    try:
        _, hw = t.hardware(iface)
    except OSError:
        raise InvalidOption("--interface", iface, "no such interface in this network namespace") from None
    segment = next((r for r in routes() if r.onlink and r.iface == iface), None)
    if segment is None:
        raise InvalidOption("--interface", iface, "the interface has no IPv4 address")
    try:
        addr = t.route_source(socket.inet_ntoa(segment.net.to_bytes(4, "big")), interface=iface)
    except OSError:
        raise InvalidOption("--interface", iface, "the interface has no IPv4 address") from None
    return Link(iface, hw, int.from_bytes(socket.inet_aton(addr), "big"), segment.mask)


def with_sender(lnk: Link, source: str, transport: Transport | None = None) -> Link:
    """``lnk`` sending its ARP requests from ``source`` (``--source``), still on ``lnk``'s interface.

    Like the kernel's own ARP for a bound socket (arp_announce 0, as fping -S gets), any
    address of this machine will do, even one held by another interface; an address the
    machine does not have, loopback, 0.0.0.0 (an RFC 5227 probe) or a multicast or broadcast
    address is refused (InvalidOption). Nothing is sent: the check binds a UDP socket.
    """
    advice = f"give an address this machine has on {lnk.name} (ip -4 addr show {lnk.name}), or leave --source out"
    addr = ipaddress.IPv4Address(".".join(str(int(octet)) for octet in source.split(".")))  # a dotted quad (engine), '010' decimal
    if addr.is_loopback or addr.is_unspecified or addr.is_multicast or int(addr) == 0xFFFFFFFF:
        raise InvalidOption("--source", source, f"not usable as the sender of ARP requests on {lnk.name}; {advice}")
    target = socket.inet_ntoa((lnk.address & lnk.netmask).to_bytes(4, "big"))
    try:
        (transport or default_transport()).route_source(target, interface=lnk.name, source=str(addr))
    except OSError as exc:
        if exc.errno == errno.EADDRNOTAVAIL:
            raise InvalidOption("--source", source, f"not an address of this machine; {advice}") from None
        raise InvalidOption("--source", source, f"unusable on {lnk.name} ({exc.strerror}); {advice}") from None
    return replace(lnk, sender=int(addr))


def onlink_routes(interface: str | None = None) -> list[OnLinkRoute]:
    """On-link (gatewayless) routes, optionally on one interface only."""
    return [r for r in routes() if r.onlink and (interface is None or r.iface == interface)]


def arp_request_template(lnk: Link) -> bytes:
    """A broadcast who-has frame from ``lnk``, target address zero (patched per probe): the bytes Scapy's
    ``Ether(dst=broadcast) / ARP(op=1)`` gives (tests check that), packed here because importing Scapy's
    layers costs 0.2 to 0.4 s of start-up before the first packet (bench/startup.py)."""
    ether = b"\xff" * 6 + lnk.mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, ETH_P_IP, 6, 4, 1) + lnk.mac + lnk.spa.to_bytes(4, "big") + bytes(6) + bytes(4)
    return ether + arp  # 42 bytes, no Ethernet padding: the kernel pads short frames


# Where Scapy reads its manuf database from (scapy/data.py: MANUFDB): Wireshark's file when installed, else the
# copy Scapy bundles (scapy/libs/manuf.py, the same format inside a string).
_MANUF_DIRS = ("/usr", "/usr/local", "/opt", "/opt/wireshark", "/Applications/Wireshark.app/Contents/Resources")


@lru_cache(maxsize=1)
def _manuf_text() -> str:
    """The manuf database Scapy would load, as text ("" when there is none), found without importing Scapy."""
    import importlib.util

    for directory in _MANUF_DIRS:
        path = Path(directory, "share/wireshark/manuf")
        if path.exists():
            return "\n" + path.read_text(errors="backslashreplace")
    spec = importlib.util.find_spec("scapy")  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        return ""
    bundled = Path(next(iter(spec.submodule_search_locations)), "libs", "manuf.py")
    return "\n" + bundled.read_text(errors="backslashreplace") if bundled.exists() else ""


def _manuf_long(rest: str) -> str | None:
    """A manuf line after its OUI as Scapy's ManufDA keeps it: the text after the short name (a leading '#'
    dropped), or the short name when there is none."""
    parts = rest.strip().split(None, 1)
    if not parts:
        return None
    long_name = parts[1].lstrip("#").strip() if len(parts) > 1 else ""
    return long_name or parts[0]


@lru_cache(maxsize=1)
def _manuf_table() -> dict[str, str | None]:
    """Every 3-byte OUI of the database (a later line wins, as in Scapy's dict): for sweeps with many vendors."""
    table: dict[str, str | None] = {}
    for line in _manuf_text().splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and len(parts[0]) == 8 and parts[0].count(":") == 2:
            table[parts[0]] = _manuf_long(parts[1])
    return table


_SCANS_BEFORE_TABLE = 32  # a scan of the text costs ~1.5 ms, the whole table ~50 ms: few vendors scan, many build it


@lru_cache(maxsize=4096)
def _oui_name(oui: str) -> str | None:
    """The name Scapy's ManufDA gives a 3-byte OUI (``00:00:0C``): its last line for that OUI."""
    if _oui_name.cache_info().currsize >= _SCANS_BEFORE_TABLE:
        return _manuf_table().get(oui)
    text, found, at = _manuf_text(), None, 0
    needle = "\n" + oui
    while (at := text.find(needle, at)) >= 0:
        at += len(needle)
        if text[at:at + 1] in (" ", "\t"):
            end = text.find("\n", at)
            found = text[at:end if end >= 0 else len(text)]
    return None if found is None else _manuf_long(found)


@lru_cache(maxsize=4096)
def vendor(mac: str) -> str | None:
    """The vendor of a MAC from the manuf database Scapy uses, e.g. 'Apple, Inc.'; None when unknown."""
    name = _oui_name(":".join(mac.split(":")[:3]).upper())
    if not name or name == mac or (":" in name and name.lower().startswith(mac[:8].lower())):
        return None
    return name
