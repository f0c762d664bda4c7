"""A fast decoder of raw IP headers over bytes (``struct``), independent of Scapy.

``decode(data, linktype)`` takes one captured frame and returns a
``DecodedPacket``: the link layer is peeled (Ethernet with 802.1Q/802.1ad tags,
raw IP, Linux SLL/SLL2, BSD null/loopback), the IPv4 or IPv6 header is decoded
field by field, and the first bytes of ICMP/TCP/UDP give the type/code or the
ports. It never raises on hostile bytes: whatever is wrong (truncated, IHL < 5,
a total length that disagrees with what was captured, a bad checksum, bad
options, non-IP frames, unknown link types) is listed in ``problems``.

Scapy is not used here: it dissects about 2.5k packets/s, this decoder an order
of magnitude more. Use Scapy where depth matters and speed does not.
"""

from __future__ import annotations

from socket import AF_INET6, inet_ntoa, inet_ntop
from struct import Struct

from recon.icmp import ERROR_TYPES4, ERROR_TYPES6, icmp_name
from recon.models import DecodedPacket, IPHeader, IPOption, IPv6Header
from recon.protocols import proto_name

__all__ = [
    "IPOPT_NAMES",
    "LINKTYPES",
    "LINKTYPE_ETHERNET",
    "LINKTYPE_IPV4",
    "LINKTYPE_IPV6",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_LINUX_SLL2",
    "LINKTYPE_LOOP",
    "LINKTYPE_NULL",
    "LINKTYPE_RAW",
    "TIME_NS_MAX",
    "decode",
    "icmp_name",
    "quoted",
]

TIME_NS_MAX = 0xFFFF_FFFF * 1_000_000_000 + 999_999_999  # the latest time a pcap record holds (2106); readers clamp to it

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

LINKTYPES = {
    LINKTYPE_NULL: "null",
    LINKTYPE_ETHERNET: "ethernet",
    12: "raw",  # DLT_RAW on most BSDs, seen in pcap files as is
    14: "raw",  # DLT_RAW on OpenBSD
    LINKTYPE_RAW: "raw",
    LINKTYPE_LOOP: "loop",
    LINKTYPE_LINUX_SLL: "linux-sll",
    LINKTYPE_IPV4: "ipv4",
    LINKTYPE_IPV6: "ipv6",
    LINKTYPE_LINUX_SLL2: "linux-sll2",
}

IPOPT_NAMES = {0: "EOL", 1: "NOP", 7: "RR", 10: "ZSU", 11: "MTUP", 12: "MTUR", 15: "ENCODE", 25: "QS",
               30: "EXP", 68: "TS", 82: "TR", 94: "EXP", 130: "SEC", 131: "LSRR", 133: "ESEC", 134: "CIPSO",
               136: "SID", 137: "SSRR", 142: "VISA", 144: "IMITD", 145: "EIP", 147: "ADDEXT", 148: "RA",
               149: "SDB", 151: "DPS", 152: "UMP", 158: "EXP", 205: "FINN", 222: "EXP"}

_V6_EXT = {0: "hop-by-hop", 43: "routing", 44: "fragment", 60: "destination-options", 51: "ah",
           135: "mobility", 139: "hip", 140: "shim6"}

# (protocol << 8 | type) of the ICMP and ICMPv6 messages that carry an identifier and a sequence number
_IDSEQ = frozenset([1 << 8 | t for t in (0, 8, 13, 14, 15, 16, 17, 18)] + [58 << 8 | t for t in (128, 129)])

_IPV4 = Struct("!BBHHHBBH4s4s")
_IPV6 = Struct("!IHBB16s16s")
_H = Struct("!H")
_HH = Struct("!HH")
_I = Struct("!I")

_ETHERTYPE_IPV4 = 0x0800
_ETHERTYPE_IPV6 = 0x86DD
_VLAN_TPIDS = frozenset((0x8100, 0x88A8, 0x9100))
_NULL_INET6 = frozenset((10, 24, 28, 30))  # AF_INET6 on Linux, NetBSD/OpenBSD, FreeBSD, macOS


_new = object.__new__
_set = object.__setattr__


def _packet(frame: int, time_ns: int, linktype: int, caplen: int, wirelen: int, ethertype: int | None,
            ip: IPHeader | IPv6Header | None, icmp_type: int | None = None, icmp_code: int | None = None,
            sport: int | None = None, dport: int | None = None, problems: tuple[str, ...] = (),
            vlans: tuple[int, ...] = (), interface: str | None = None, data: bytes = b"",
            icmp_id: int | None = None, icmp_seq: int | None = None, l4_offset: int | None = None) -> DecodedPacket:
    """``DecodedPacket(...)`` without the frozen dataclass's per-field ``object.__setattr__`` calls (same object)."""
    p = _new(DecodedPacket)
    _set(p, "__dict__", {"frame": frame, "time_ns": time_ns, "linktype": linktype, "caplen": caplen, "wirelen": wirelen,
                         "ethertype": ethertype, "ip": ip, "icmp_type": icmp_type, "icmp_code": icmp_code,
                         "sport": sport, "dport": dport, "problems": problems, "vlans": vlans,
                         "interface": interface, "data": data, "icmp_id": icmp_id, "icmp_seq": icmp_seq,
                         "l4_offset": l4_offset})
    return p


# --- link layers ---------------------------------------------------------------------------


def _link(data: bytes, linktype: int, problems: list[str]) -> tuple[int, int | None, tuple[int, ...]]:
    """(offset of the network header, ethertype or None when the link says only 'IP', VLAN ids); -1: no IP."""
    n = len(data)
    if linktype == LINKTYPE_ETHERNET:
        if n < 14:
            problems.append(f"truncated Ethernet header ({n} of 14 bytes)")
            return -1, None, ()
        etype = (data[12] << 8) | data[13]
        if etype not in _VLAN_TPIDS:
            return 14, etype, ()
        return _after_ethertype(data, 14, etype, problems)
    if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6, 12, 14):
        return 0, None, ()
    if linktype == LINKTYPE_LINUX_SLL2:
        if n < 20:
            problems.append(f"truncated Linux SLL2 header ({n} of 20 bytes)")
            return -1, None, ()
        return _after_ethertype(data, 20, (data[0] << 8) | data[1], problems)
    if linktype == LINKTYPE_LINUX_SLL:
        if n < 16:
            problems.append(f"truncated Linux SLL header ({n} of 16 bytes)")
            return -1, None, ()
        return _after_ethertype(data, 16, (data[14] << 8) | data[15], problems)
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if n < 4:
            problems.append(f"truncated loopback header ({n} of 4 bytes)")
            return -1, None, ()
        if linktype == LINKTYPE_LOOP:
            family = _I.unpack_from(data)[0]
        else:  # host byte order of the capturing machine: guess it
            family = int.from_bytes(data[:4], "little")
            if family > 0xFFFF:
                family = int.from_bytes(data[:4], "big")
        if family == 2:
            return 4, _ETHERTYPE_IPV4, ()
        if family in _NULL_INET6:
            return 4, _ETHERTYPE_IPV6, ()
        problems.append(f"non-IP (loopback family {family})")
        return -1, None, ()
    problems.append(f"unknown link type {linktype}")
    return -1, None, ()


def _after_ethertype(data: bytes, off: int, etype: int, problems: list[str]) -> tuple[int, int | None, tuple[int, ...]]:
    """Skip 802.1Q/802.1ad tags that follow an ethertype field (Ethernet, SLL, SLL2)."""
    vlans: list[int] = []
    while etype in _VLAN_TPIDS:
        if len(data) < off + 4:
            problems.append("truncated 802.1Q tag")
            return -1, etype, tuple(vlans)
        tci, etype = _HH.unpack_from(data, off)
        vlans.append(tci & 0x0FFF)
        off += 4
    return off, etype, tuple(vlans)


# --- IPv4 ---------------------------------------------------------------------------------


def _options(data: bytes, problems: list[str]) -> tuple[IPOption, ...]:
    """Decode IPv4 options by name; a malformed option ends the walk with a problem, never an exception."""
    opts: list[IPOption] = []
    i, n = 0, len(data)
    while i < n:
        kind = data[i]
        name = IPOPT_NAMES.get(kind, f"opt-{kind}")
        if kind == 0:
            opts.append(IPOption(0, name, 1))
            break  # EOL: the rest is padding
        if kind == 1:
            opts.append(IPOption(1, name, 1))
            i += 1
            continue
        if i + 1 >= n:
            problems.append(f"IP option {name} truncated (no length byte)")
            break
        length = data[i + 1]
        if length < 2 or i + length > n:
            problems.append(f"IP option {name} has bad length {length} ({n - i} bytes left)")
            break
        body = data[i + 2:i + length]
        if kind in (7, 131, 137) and length >= 3:  # RR, LSRR, SSRR: pointer, then addresses
            addrs = tuple(inet_ntoa(body[j:j + 4]) for j in range(1, len(body) - 3, 4))
            if (length - 3) % 4:
                problems.append(f"IP option {name} length {length} is not 3 + 4n")
            opts.append(IPOption(kind, name, length, body, pointer=body[0], addresses=addrs))
        elif kind == 68 and length >= 4:  # TS: pointer, overflow|flag, entries
            flag = body[1] & 0x0F
            addrs_l: list[str] = []
            stamps: list[int] = []
            entries = body[2:]
            step = 4 if flag == 0 else 8
            for j in range(0, len(entries) - step + 1, step):
                if flag == 0:
                    stamps.append(_I.unpack_from(entries, j)[0])
                else:
                    addrs_l.append(inet_ntoa(entries[j:j + 4]))
                    stamps.append(_I.unpack_from(entries, j + 4)[0])
            if len(entries) % step:
                problems.append(f"IP option TS length {length} does not fit its flag {flag}")
            opts.append(IPOption(kind, name, length, body, pointer=body[0], addresses=tuple(addrs_l),
                                 timestamps=tuple(stamps), overflow=body[1] >> 4, ts_flag=flag))
        else:
            opts.append(IPOption(kind, name, length, body))
        i += length
    return tuple(opts)


def _ipv4(data: bytes, off: int, pad_ok: bool, problems: list[str]) -> tuple[IPHeader | None, int, int]:
    """The IPv4 header at ``off``, plus (start, end) of its payload in ``data`` (end ≤ captured)."""
    n = len(data) - off
    if n < 20:
        problems.append(f"truncated IPv4 header ({n} of 20 bytes)")
        return None, 0, 0
    vihl, tos, tlen, ident, fo, ttl, proto, csum, s, d = _IPV4.unpack_from(data, off)
    ihl = vihl & 0x0F
    hlen = ihl << 2
    if ihl < 5:
        problems.append(f"IHL {ihl} < 5 (header length {hlen} bytes, minimum 20)")
        hlen = 20
    opts: tuple[IPOption, ...] = ()
    if hlen > n:
        problems.append(f"truncated IPv4 options (header {hlen} bytes, {n} captured)")
        ok = None
    else:
        ok = int.from_bytes(data[off:off + hlen], "big") % 0xFFFF == 0 if ihl >= 5 else False
        if hlen > 20:
            opts = _options(data[off + 20:off + hlen], problems)
    if ok is False and ihl >= 5:
        problems.append(f"bad IPv4 header checksum 0x{csum:04x}")
    if tlen < hlen:
        problems.append(f"total length {tlen} < header length {hlen}")
        end = off + n
    elif tlen > n:
        problems.append(f"truncated: total length {tlen}, {n} bytes captured")
        end = off + n
    else:
        end = off + tlen
        if tlen < n and not (pad_ok and len(data) <= 60):
            problems.append(f"{n - tlen} bytes captured beyond total length {tlen}")
    flags = fo >> 13
    frag = fo & 0x1FFF
    if flags & 1 or frag:
        problems.append(f"fragment (offset {frag * 8}{', more' if flags & 1 else ', last'})")
    if flags & 4:
        problems.append("reserved flag set")
    h = _new(IPHeader)  # _header(...) inlined: one call less per packet on the hot path
    _set(h, "__dict__", {"version": vihl >> 4, "ihl": ihl, "tos": tos, "total_length": tlen, "id": ident, "flags": flags,
                         "frag_offset": frag, "ttl": ttl, "proto": proto, "checksum": csum, "checksum_ok": ok,
                         "src": inet_ntoa(s), "dst": inet_ntoa(d), "options": opts})
    return h, off + hlen, end


# --- IPv6 ---------------------------------------------------------------------------------


def _ipv6(data: bytes, off: int, pad_ok: bool, problems: list[str]) -> tuple[IPv6Header | None, int, int, int | None]:
    n = len(data) - off
    if n < 40:
        problems.append(f"truncated IPv6 header ({n} of 40 bytes)")
        return None, 0, 0, None
    vtf, plen, nxt, hlim, s, d = _IPV6.unpack_from(data, off)
    total = 40 + plen
    if total > n:
        problems.append(f"truncated: payload length {plen}, {n - 40} bytes captured")
        end = off + n
    else:
        end = off + total
        if total < n and not (pad_ok and len(data) <= 60) and plen:
            problems.append(f"{n - total} bytes captured beyond payload length {plen}")
    exts: list[str] = []
    cur = nxt
    p = off + 40
    upper: int | None = None
    frag_off = frag_id = None
    mf = None
    while True:
        if cur in (0, 43, 60, 135, 139, 140):
            if p + 2 > end:
                problems.append(f"truncated IPv6 {_V6_EXT[cur]} header")
                break
            exts.append(_V6_EXT[cur])
            cur, hl = data[p], (data[p + 1] + 1) * 8
            p += hl
        elif cur == 44:
            if p + 8 > end:
                problems.append("truncated IPv6 fragment header")
                break
            exts.append("fragment")
            cur = data[p]
            fo = _H.unpack_from(data, p + 2)[0]
            frag_off, mf, frag_id = fo >> 3, bool(fo & 1), _I.unpack_from(data, p + 4)[0]
            problems.append(f"fragment (offset {frag_off * 8}{', more' if mf else ', last'})")
            p += 8
        elif cur == 51:
            if p + 2 > end:
                problems.append("truncated IPv6 AH header")
                break
            exts.append("ah")
            cur, hl = data[p], (data[p + 1] + 2) * 4
            p += hl
        else:
            upper = cur
            break
        if len(exts) > 32:
            problems.append("too many IPv6 extension headers")
            break
    hdr = IPv6Header(vtf >> 28, (vtf >> 20) & 0xFF, vtf & 0xFFFFF, plen, nxt, hlim, inet_ntop(AF_INET6, s),
                     inet_ntop(AF_INET6, d), tuple(exts), upper, frag_off, mf, frag_id)
    return hdr, min(p, end), end, (upper if not frag_off else None)


# --- the decoder ------------------------------------------------------------------------


def decode(data: bytes, linktype: int = LINKTYPE_ETHERNET, frame: int = 0, time_ns: int = 0,
           wirelen: int | None = None, interface: str | None = None) -> DecodedPacket:
    """Decode one captured frame. Never raises: everything wrong is listed in ``problems``."""
    if type(data) is not bytes:
        data = bytes(data)
    problems: list[str] = []
    caplen = len(data)
    wl = caplen if wirelen is None else wirelen
    if time_ns >= TIME_NS_MAX:
        problems.append("timestamp out of range (shown as the latest time a pcap holds)")
    if wl > caplen:
        problems.append(f"snapped: {caplen} of {wl} bytes captured")
    etype: int | None
    vlans: tuple[int, ...]
    if linktype == 1 and caplen >= 14 and (data[12] << 8 | data[13]) not in _VLAN_TPIDS:  # the common case, inline
        off, etype, vlans = 14, data[12] << 8 | data[13], ()
    else:
        off, etype, vlans = _link(data, linktype, problems)
    if off < 0:
        return _packet(frame, time_ns, linktype, caplen, wl, etype, None, problems=tuple(problems),
                             vlans=vlans, interface=interface, data=data)
    pad_ok = linktype == LINKTYPE_ETHERNET
    if etype is None:  # raw IP: the version nibble decides
        if off >= caplen:
            problems.append("empty IP packet")
            return _packet(frame, time_ns, linktype, caplen, wl, None, None, problems=tuple(problems),
                                 interface=interface, data=data)
        v = data[off] >> 4
        if linktype == LINKTYPE_IPV4 or (linktype != LINKTYPE_IPV6 and v == 4):
            etype = _ETHERTYPE_IPV4
        elif linktype == LINKTYPE_IPV6 or v == 6:
            etype = _ETHERTYPE_IPV6
        else:
            problems.append(f"non-IP (version {v} on a raw IP link)")
            return _packet(frame, time_ns, linktype, caplen, wl, None, None, problems=tuple(problems),
                                 interface=interface, data=data)
    ip: IPHeader | IPv6Header | None
    upper: int | None
    if etype == _ETHERTYPE_IPV4:
        ip, start, end = _ipv4(data, off, pad_ok, problems)
        if ip is None:
            upper = None
        else:
            if ip.version != 4:
                problems.append(f"version {ip.version} in an IPv4 header")
            upper = ip.proto if ip.frag_offset == 0 else None
    elif etype == _ETHERTYPE_IPV6:
        ip, start, end, upper = _ipv6(data, off, pad_ok, problems)
        if ip is not None and ip.version != 6:
            problems.append(f"version {ip.version} in an IPv6 header")
    else:
        problems.append(f"non-IP (ethertype 0x{etype:04x})")
        return _packet(frame, time_ns, linktype, caplen, wl, etype, None, problems=tuple(problems),
                             vlans=vlans, interface=interface, data=data)
    it = ic = sp = dp = iid = iseq = None
    if upper is not None:
        if upper == 1 or upper == 58:
            if end - start >= 2:
                it, ic = data[start], data[start + 1]
                if (upper << 8 | it) in _IDSEQ and end - start >= 8:
                    iid, iseq = _HH.unpack_from(data, start + 4)
            else:
                problems.append("truncated ICMP header")
        elif upper == 6 or upper == 17 or upper == 132 or upper == 136:
            if end - start >= 4:
                sp, dp = _HH.unpack_from(data, start)
            else:
                problems.append(f"truncated {proto_name(upper)} header")
    # _packet(...) inlined: this return is the hot path, and a call with 18 arguments costs more than the dict
    p = _new(DecodedPacket)
    _set(p, "__dict__", {"frame": frame, "time_ns": time_ns, "linktype": linktype, "caplen": caplen, "wirelen": wl,
                         "ethertype": etype, "ip": ip, "icmp_type": it, "icmp_code": ic, "sport": sp, "dport": dp,
                         "problems": tuple(problems) if problems else (), "vlans": vlans, "interface": interface,
                         "data": data, "icmp_id": iid, "icmp_seq": iseq, "l4_offset": start if upper is not None else None})
    return p


def quoted(pkt: DecodedPacket) -> DecodedPacket | None:
    """The datagram an ICMP/ICMPv6 error quotes (after its 8-byte header), decoded as raw IP; None for other packets.

    The quote is usually cut (the IP header and 8 bytes, or what fits in 1280), so its problems name that."""
    if pkt.icmp_type is None or pkt.l4_offset is None or pkt.ip is None:
        return None
    errors = ERROR_TYPES4 if pkt.ip.version == 4 else ERROR_TYPES6  # the messages that quote a datagram
    if pkt.icmp_type not in errors or len(pkt.data) < pkt.l4_offset + 8 + 1:
        return None
    return decode(pkt.data[pkt.l4_offset + 8:], LINKTYPE_RAW)
