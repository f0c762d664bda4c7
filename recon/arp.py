"""On-link discovery at layer 2: which targets are on a local segment, ARP frames, MAC vendors.

The routing table comes from the kernel of the *current* network namespace
(``/proc/thread-self/net/route``), never from Scapy's ``conf.route``, which is cached at
import and may describe another namespace. An interface's MAC and the address the
kernel uses on its segment come through the transport (recon/transport.py), which
owns every socket and ioctl. Scapy builds the ARP request template once; the engine patches the
target address per probe. Vendors come from the manuf database Scapy reads, looked up on disk.
"""

from __future__ import annotations

import errno
import io
import ipaddress
import socket
import struct
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

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
# copy Scapy bundles (scapy/libs/manuf.py: the same file gzipped and base85-encoded in a string).
_MANUF_DIRS = ("/usr", "/usr/local", "/opt", "/opt/wireshark", "/Applications/Wireshark.app/Contents/Resources")


def _manuf_file() -> BinaryIO | None:
    """The manuf database Scapy would load, opened as bytes (None when there is none), found without importing
    Scapy. Wireshark's file is read from disk by each lookup, never held: the whole of it as a dict cost ~9 MB
    of peak RSS on every sweep that reached an on-link segment (issue 12)."""
    for directory in _MANUF_DIRS:
        path = Path(directory, "share/wireshark/manuf")
        if path.exists():
            return path.open("rb")
    bundled = _bundled_manuf()
    return io.BytesIO(bundled) if bundled else None


@lru_cache(maxsize=1)
def _bundled_manuf() -> bytes:
    """Scapy's bundled copy, decoded as scapy/libs/manuf.py does (b85 then gzip) but without running it; b""
    when Scapy or the copy is missing. Only machines without Wireshark's file hold it (~2.3 MB)."""
    import base64
    import gzip
    import importlib.util

    spec = importlib.util.find_spec("scapy")  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        return b""
    bundled = Path(next(iter(spec.submodule_search_locations)), "libs", "manuf.py")
    if not bundled.exists():
        return b""
    text = bundled.read_text(errors="replace")
    start = text.find('DATA = _d("""')
    end = text.find('""")', start)
    if start < 0 or end < 0:
        return b""
    return gzip.decompress(base64.b85decode(text[start + 13:end].replace("\n", "").replace("\r", "")))


def _manuf_long(rest: str) -> str | None:
    """A manuf line after its OUI as Scapy's ManufDA keeps it: the text after the short name (a leading '#'
    dropped), or the short name when there is none."""
    parts = rest.strip().split(None, 1)
    if not parts:
        return None
    long_name = parts[1].lstrip("#").strip() if len(parts) > 1 else ""
    return long_name or parts[0]


def _next_line(f: BinaryIO) -> bytes:
    """The next non-blank line of ``f`` from where it stands (b"" at the end of the file)."""
    while (line := f.readline()) and not line.strip():
        pass
    return line


def _line_at(f: BinaryIO, pos: int) -> bytes:
    """The first non-blank line that starts at or after byte ``pos`` (b"" at the end of the file)."""
    f.seek(max(pos - 1, 0))
    if pos > 0:
        f.readline()  # the rest of the line holding byte pos-1: the next line starts at or after pos
    return _next_line(f)


def _oui_line(f: BinaryIO, oui: bytes) -> bytes | None:
    """The last line of ``f`` whose first field is exactly ``oui`` (a later line wins, as in Scapy's dict), by
    bisection over byte offsets: manuf is sorted by its first field (Wireshark's make-manuf.py writes it so; its
    leading comments sort first, '#' < '0'), so a lookup reads ~20 short stretches, not 2.3 MB."""
    lo, hi = 0, f.seek(0, io.SEEK_END)
    while lo < hi:  # the smallest offset whose next line has a key >= oui (or is the end)
        mid = (lo + hi) // 2
        line = _line_at(f, mid)
        if not line or line[:8] >= oui:
            hi = mid
        else:
            lo = mid + 1
    found, line = None, _line_at(f, lo)
    while line[:8] == oui:  # this OUI's line, then its /28 and /36 blocks (same first 8 bytes)
        if line[8:9] in (b" ", b"\t"):
            found = line[9:]
        line = _next_line(f)
    return found


@lru_cache(maxsize=4096)
def _oui_name(oui: str) -> str | None:
    """The name Scapy's ManufDA gives a 3-byte OUI (``00:00:0C``): its last line for that OUI."""
    f = _manuf_file()
    if f is None:
        return None
    with f:
        found = _oui_line(f, oui.encode("ascii", "replace"))
    return None if found is None else _manuf_long(found.decode(errors="backslashreplace"))


@lru_cache(maxsize=4096)
def vendor(mac: str) -> str | None:
    """The vendor of a MAC from the manuf database Scapy uses, e.g. 'Apple, Inc.'; None when unknown."""
    name = _oui_name(":".join(mac.split(":")[:3]).upper())
    if not name or name == mac or (":" in name and name.lower().startswith(mac[:8].lower())):
        return None
    return name
