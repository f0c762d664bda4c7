"""`recon craft`: build an IPv4 packet by hand, show it, send it, save it.

Three ways onto the wire, because the Linux kernel edits IP_HDRINCL packets
(net/ipv4/raw.c ``raw_send_hdrinc``; checked in the lab with tcpdump):

- ``raw``: ``socket(AF_INET, SOCK_RAW, IPPROTO_RAW)`` with ``IP_HDRINCL``. Linux always
  rewrites the total length and the header checksum, fills the id when it is 0 and the
  source when it is 0.0.0.0. Everything else goes out as built.
- ``l2``: ``AF_PACKET`` with a hand-built Ethernet header (next hop from the routing
  table, its MAC from the neighbour table or one ARP request). The kernel does not touch
  the IP bytes, so a deliberately wrong checksum or length really goes out.
- ``scapy``: Scapy's ``send()``; on Linux that is also a packet socket, bytes untouched.

``auto`` (the default) takes ``raw`` unless the kernel would change a field you set, and
then ``l2``, and says why. Nothing is sent before every option has been validated.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import replace

from recon import scapyload
from recon.arp import ETH_P_ARP, routes
from recon.errors import InputError, InvalidOption, InvalidTarget, PrivilegeError, ReconEnvironmentError, check_range
from recon.models import CraftedPacket, CraftResult, CraftSpec, KernelRewrite
from recon.packets import DEFAULT_PROTO, FIELD_RANGES, TCP_FLAGS, allowed, build_packet, check_spec, inet_checksum
from recon.targets import resolve_host
from recon.transport import PacketSocket, SystemTransport, Transport, default_transport, proc_net

__all__ = ["VIAS", "arp_request", "craft", "kernel_rewrites", "parse_spec"]

VIAS = ("auto", "raw", "l2", "scapy")
_ETH_P_IP = 0x0800
_ARPHRD_LOOPBACK = 772


# --- parsing user input into a CraftSpec ------------------------------------------------------


def _int(option: str, text: str | int | None, lo: int, hi: int, default: int | None = None) -> int | None:
    return default if text is None else _int_in(option, text, lo, hi)


def _int_in(option: str, text: str | int, lo: int, hi: int) -> int:
    """``text`` (decimal, or hex as 0x..) as an integer in lo..hi, else InvalidOption naming ``option``."""
    if isinstance(text, int):
        value = text
    else:
        try:
            value = int(str(text).strip(), 0)
        except ValueError:
            raise InvalidOption(option, text, f"an integer {lo}..{hi} (decimal, or hex as 0x..)") from None
    if not lo <= value <= hi:
        raise InvalidOption(option, text, allowed(lo, hi))
    return value


def _field(attr: str, text: str | None, default: int | None = None) -> int | None:
    """A CraftSpec field from its option text, with the option name and range of packets.FIELD_RANGES."""
    option, lo, hi = FIELD_RANGES[attr]
    return _int(option, text, lo, hi, default)


def _num(attr: str, text: str | None, default: int) -> int:
    value = _field(attr, text, default)
    return default if value is None else value


def _auto_or_field(attr: str, text: str | None) -> int | None:
    if text is None or str(text).strip().lower() == "auto":
        return None
    return _field(attr, text)


def _text(option: str, text: str) -> bytes:
    """``text`` as UTF-8; bytes in argv that were not UTF-8 (surrogate escapes) are bad input."""
    try:
        return text.encode()
    except UnicodeEncodeError:
        raise InvalidOption(option, text, "text in UTF-8 (give any other bytes with --data-hex)") from None


def _hex(option: str, text: str) -> bytes:
    cleaned = "".join(text.split()).replace(":", "").replace("-", "")
    if cleaned.lower().startswith("0x"):
        cleaned = cleaned[2:]
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise InvalidOption(option, text, "hex digits in pairs, e.g. 01020304 or 01:02:03:04") from None


def _ports(option: str, text: str) -> tuple[int, int]:
    parts = text.split(":")
    if len(parts) != 2:
        raise InvalidOption(option, text, "SPORT:DPORT, each 0..65535, e.g. 40000:53")
    return _int_in(option, parts[0], 0, 0xFFFF), _int_in(option, parts[1], 0, 0xFFFF)


def _address(option: str, text: str) -> str:
    text = text.strip()
    if text and all(c.isdigit() or c == "." for c in text):
        try:
            return str(ipaddress.IPv4Address(text))
        except ValueError:
            raise InvalidOption(option, text, "an IPv4 address (four octets 0..255) or a host name") from None
    if ":" in text:  # an IPv6 address (scoped or not): said as such, not as a name that does not resolve
        raise InvalidOption(option, text, "craft builds IPv4 headers only; give an IPv4 address or a host name "
                                          "(IPv6 hosts: recon ping or recon sweep)")
    try:  # as sweep and ping take names: never a number in disguise ('0xc612000a', '0x7f.1') for inet_aton
        return resolve_host(text)
    except InvalidTarget as exc:
        raise InvalidOption(option, text, f"an IPv4 address (four decimal octets 0..255) or a host name that resolves "
                                          f"({exc.reason})") from None


def _route_source(dst: str, transport: Transport) -> str:
    """The source address the kernel would pick for ``dst``, or InputError when there is no route."""
    try:
        return transport.route_source(dst)
    except OSError as exc:
        raise InputError(f"no route to {dst} to choose a source address from ({exc.strerror})",
                         hint="give --src") from None


def parse_spec(
    *,
    dst: str,
    src: str | None = None,
    tos: str | None = None,
    ident: str | None = None,
    ttl: str | None = None,
    df: bool = False,
    mf: bool = False,
    frag_offset: str | None = None,
    proto: str | None = None,
    options: str | None = None,
    checksum: str | None = None,
    length: str | None = None,
    icmp_type: str | None = None,
    icmp_code: str | None = None,
    icmp_id: str | None = None,
    icmp_seq: str | None = None,
    data: str | None = None,
    data_hex: str | None = None,
    size: str | None = None,
    udp: str | None = None,
    tcp: str | None = None,
    flags: str | None = None,
    tcp_seq: str | None = None,
    tcp_ack: str | None = None,
    window: str | None = None,
    raw_hex: str | None = None,
    transport: Transport | None = None,
) -> CraftSpec:
    """Turn command-line strings into a validated CraftSpec (InvalidOption names field and range).

    Names are resolved last, so a bad number never costs a DNS lookup. Without ``src`` the
    source is the one ``transport`` (default: the kernel's) would pick for ``dst``.
    """
    payload, kinds = _payload_kind(udp=udp, tcp=tcp, raw_hex=raw_hex, data=data, data_hex=data_hex, size=size, icmp_type=icmp_type,
                                   icmp_code=icmp_code, icmp_id=icmp_id, icmp_seq=icmp_seq, flags=flags, tcp_seq=tcp_seq,
                                   tcp_ack=tcp_ack, window=window)
    body = b""
    if data is not None:
        body = _text("--data", data)
    elif data_hex is not None:
        body = _hex("--data-hex", data_hex)
    elif size is not None:
        body = bytes(i & 0xFF for i in range(_int("--size", size, 0, 65_507) or 0))
    elif raw_hex is not None:
        body = _hex("--raw-hex", raw_hex)
    ports = udp if udp is not None else tcp
    sport, dport = _ports(kinds[0], ports) if payload in ("udp", "tcp") and ports is not None else (0, 0)
    unaddressed = CraftSpec(
        dst="0.0.0.0", src="0.0.0.0",
        tos=_num("tos", tos, 0), ident=_num("ident", ident, 1), ttl=_num("ttl", ttl, 64), df=df, mf=mf,
        frag_offset=_num("frag_offset", frag_offset, 0), proto=_num("proto", proto, DEFAULT_PROTO[payload]),
        options=_hex("--options", options) if options else b"",
        checksum=_auto_or_field("checksum", checksum), total_length=_auto_or_field("total_length", length),
        payload=payload,
        icmp_type=_num("icmp_type", icmp_type, 8), icmp_code=_num("icmp_code", icmp_code, 0),
        icmp_id=_num("icmp_id", icmp_id, 0), icmp_seq=_num("icmp_seq", icmp_seq, 0),
        sport=sport, dport=dport, tcp_flags=(flags or "S").upper(),
        tcp_seq=_num("tcp_seq", tcp_seq, 0), tcp_ack=_num("tcp_ack", tcp_ack, 0), tcp_window=_num("tcp_window", window, 8192),
        data=body,
    )
    check_spec(unaddressed)  # options, sizes: before any lookup
    dst_addr = _address("--dst", dst)
    if src is not None:
        return replace(unaddressed, dst=dst_addr, src=_address("--src", src))
    return replace(unaddressed, dst=dst_addr, src=_route_source(dst_addr, transport or default_transport()))


def _payload_kind(*, udp: str | None, tcp: str | None, raw_hex: str | None, data: str | None, data_hex: str | None,
                  size: str | None, **fields: str | None) -> tuple[str, list[str]]:
    """The payload kind (icmp, udp, tcp, raw) and the options that chose it; InputError when options
    contradict each other (two payloads, two data sources, a field of another payload)."""
    kinds = [name for name, given in (("--udp", udp), ("--tcp", tcp), ("--raw-hex", raw_hex)) if given is not None]
    if len(kinds) > 1:
        raise InputError(f"{kinds[0]} and {kinds[1]} together",
                         hint="choose one payload: --udp, --tcp or --raw-hex (an ICMP echo when none)")
    payload = {"--udp": "udp", "--tcp": "tcp", "--raw-hex": "raw"}[kinds[0]] if kinds else "icmp"
    given_data = [n for n, v in (("--data", data), ("--data-hex", data_hex), ("--size", size)) if v is not None]
    if len(given_data) > 1:
        raise InputError(f"{given_data[0]} and {given_data[1]} together", hint="give one of --data, --data-hex, --size")
    homes = {"icmp_type": "icmp", "icmp_code": "icmp", "icmp_id": "icmp", "icmp_seq": "icmp", "flags": "tcp", "tcp_seq": "tcp",
             "tcp_ack": "tcp", "window": "tcp"}
    misplaced = ["--" + name.replace("_", "-") for name, home in homes.items() if fields.get(name) is not None and home != payload]
    if payload == "raw" and given_data:
        misplaced.insert(0, given_data[0])
    if misplaced:
        raise InputError(f"{misplaced[0]} does not go with " + (kinds[0] if kinds else "the ICMP echo payload"),
                         hint="ICMP fields go with the default payload, --flags/--tcp-seq/--tcp-ack/--window with --tcp, "
                              "and --raw-hex is the whole IP payload (no --data)")
    flags = fields.get("flags")
    if flags is not None and (not flags or set(flags.upper()) - set(TCP_FLAGS)):
        raise InvalidOption("--flags", flags, f"letters from {TCP_FLAGS} (FIN SYN RST PSH ACK URG ECE CWR), e.g. S or SA")
    return payload, kinds


# --- what Linux changes on the IP_HDRINCL path --------------------------------------------------


def kernel_rewrites(data: bytes) -> tuple[KernelRewrite, ...]:
    """What Linux's raw_send_hdrinc() changes in ``data`` (raw(7); verified in the lab).

    Total length and checksum are always rewritten, id is filled when 0, the source when
    0.0.0.0. An IHL below 5 is left alone by the kernel, but recon never builds one.
    """
    changes = []
    tot_len, ident = struct.unpack("!HH", data[2:6])
    if tot_len != len(data):
        changes.append(KernelRewrite("total length", tot_len, len(data)))
    if ident == 0:
        changes.append(KernelRewrite("id", 0))
    if data[12:16] == b"\0\0\0\0":
        changes.append(KernelRewrite("source", "0.0.0.0"))
    hlen = (data[0] & 0x0F) * 4
    fixed = bytearray(data[:hlen])
    fixed[2:4] = struct.pack("!H", len(data))
    value = int.from_bytes(fixed[10:12], "big")
    fixed[10:12] = b"\0\0"
    correct = inet_checksum(bytes(fixed))
    if ident == 0 or data[12:16] == b"\0\0\0\0":
        changes.append(KernelRewrite("header checksum", value))  # over fields the kernel fills in
    elif value != correct:
        changes.append(KernelRewrite("header checksum", value, correct))
    return tuple(changes)


# --- senders ------------------------------------------------------------------------------------

# Crafting needs raw sockets; ICMP datagram sockets cannot carry our own IP header.
_HINT = PrivilegeError.ADVICE + (" (unprivileged ICMP datagram sockets cannot carry a hand-built IP header, "
                                 "so ping_group_range does not help here)")


class _RawSender:
    """IPPROTO_RAW with IP_HDRINCL (the transport sets it; implied by IPPROTO_RAW on Linux)."""

    def __init__(self, dst: str, transport: Transport) -> None:
        self.dst = dst
        self.sock = transport.raw_ip(socket.AF_INET, socket.IPPROTO_RAW, what="recon craft", hint=_HINT)

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, (self.dst, 0))

    def close(self) -> None:
        self.sock.close()


def _route(dst: str) -> tuple[str, str]:
    """(interface, next hop) for ``dst`` from this thread's namespace's main routing table."""
    if ipaddress.IPv4Address(dst).is_loopback:
        return "lo", dst
    want = int(ipaddress.IPv4Address(dst))
    for r in routes():  # longest prefix first, then lowest metric
        if want & r.mask == r.net:
            return r.iface, dst if r.onlink else str(ipaddress.IPv4Address(r.gateway))
    raise ReconEnvironmentError(f"no route to {dst} for sending at layer 2", hint="check 'ip route', or use --via raw")


def _neighbour(ip: str, iface: str) -> str | None:
    try:
        lines = proc_net("arp").read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        cols = line.split()
        if len(cols) >= 6 and cols[0] == ip and cols[5] == iface and int(cols[2], 16) & 0x2 and cols[3] != "00:00:00:00:00:00":
            return cols[3]
    return None


def arp_request(mac: bytes, me: bytes, target: bytes) -> bytes:
    """A broadcast ARP who-has ``target`` from ``mac``/``me`` (RFC 826), as a whole Ethernet frame."""
    return (b"\xff" * 6 + mac + struct.pack("!H", ETH_P_ARP) + struct.pack("!HHBBH", 1, _ETH_P_IP, 6, 4, 1)
            + mac + me + b"\0" * 6 + target)


def _arp(iface: str, mac: bytes, next_hop: str, transport: Transport, tries: int = 3, wait: float = 1.0) -> str:
    """One ARP request per try for ``next_hop`` on ``iface``; its MAC from the reply."""
    me = socket.inet_aton(_route_source(next_hop, transport))  # our address on that link
    target = socket.inet_aton(next_hop)
    sock = transport.packet(iface, ETH_P_ARP, what="recon craft --via l2", hint=_HINT)
    try:
        request = arp_request(mac, me, target)
        for _ in range(tries):
            sock.send(request)
            deadline = time.monotonic() + wait
            while (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                try:
                    frame = sock.recv(2048)
                except TimeoutError:
                    break
                arp = frame[14:42]
                if len(arp) == 28 and arp[6:8] == b"\0\x02" and arp[14:18] == target:
                    return ":".join(f"{b:02x}" for b in arp[8:14])
    finally:
        sock.close()
    raise ReconEnvironmentError(f"next hop {next_hop} did not answer ARP on {iface}", hint="is it up? try --via raw")


class _L2Sender:
    """AF_PACKET with our own Ethernet header: the IP bytes go out exactly as built."""

    def __init__(self, dst: str, transport: Transport) -> None:
        self.iface, self.next_hop = _route(dst)
        self.sock: PacketSocket = transport.packet(self.iface, _ETH_P_IP, what="recon craft --via l2", hint=_HINT)
        try:
            hatype, mac = transport.hardware(self.iface)
            if hatype == _ARPHRD_LOOPBACK:
                self.mac = "00:00:00:00:00:00"
            else:
                self.mac = _neighbour(self.next_hop, self.iface) or _arp(self.iface, mac, self.next_hop, transport)
            self.header = bytes.fromhex(self.mac.replace(":", "")) + mac + struct.pack("!H", _ETH_P_IP)
        except BaseException:
            self.sock.close()
            raise

    def send(self, data: bytes) -> None:
        self.sock.send(self.header + data)

    def close(self) -> None:
        self.sock.close()


class _ScapySender:
    """Scapy's send(): on Linux a packet socket after Scapy's own routing and ARP."""

    def __init__(self, data: bytes, transport: Transport) -> None:
        if not isinstance(transport, SystemTransport):  # Scapy opens its own sockets: it would reach the real network
            raise InputError(f"--via scapy sends through Scapy's own sockets, not the {transport.name} transport",
                             hint="use --via raw or --via l2")
        transport.raw_ip(socket.AF_INET, socket.IPPROTO_RAW, what="recon craft --via scapy", hint=_HINT).close()
        scapyload.route_tables()  # send() picks the interface by Scapy's routes
        from scapy.layers.inet import IP

        self.packet = IP(data)
        if bytes(self.packet) != data:
            raise InputError("Scapy does not reproduce these bytes when it re-serialises them", hint="use --via raw or --via l2")

    def send(self, data: bytes) -> None:
        from scapy.sendrecv import send

        send(self.packet, verbose=False)

    def close(self) -> None:
        pass


_Sender = _RawSender | _L2Sender | _ScapySender


# --- the library call -----------------------------------------------------------------------------


def craft(
    spec: CraftSpec,
    *,
    send: bool = True,
    via: str = "auto",
    count: int = 1,
    interval: float = 1.0,
    pcap: str | None = None,
    on_ready: Callable[[CraftedPacket], None] | None = None,
    transport: Transport | None = None,
) -> CraftResult:
    """Build ``spec``; unless ``send`` is False, put it on the wire ``count`` times, ``interval`` s apart.

    ``pcap`` receives the built bytes (link type raw IPv4) once per packet sent, or once
    for a dry run. ``on_ready(packet)`` is called once the packet is built and the way out
    is open (privileges checked, next hop resolved), before the first packet leaves, so a
    caller can show it while a long ``count`` runs. Sockets come from ``transport`` (default:
    the kernel's). Raises InvalidOption before anything is sent, PrivilegeError without
    CAP_NET_RAW.
    """
    _check_send_options(via, count, interval)
    packet = build_packet(spec)
    rewrites = kernel_rewrites(packet.data)
    if not send:
        if on_ready:
            on_ready(packet)
        return _dry_run_pcap(CraftResult(packet, "none", 0, via, rewrites), pcap)

    chosen = via if via != "auto" else "l2" if rewrites else "raw"  # l2: the kernel leaves the bytes alone
    transport = transport or default_transport()
    sender: _Sender = (_RawSender(packet.dst, transport) if chosen == "raw" else _L2Sender(packet.dst, transport)
                       if chosen == "l2" else _ScapySender(packet.data, transport))
    writer = None
    sent = 0
    interrupted = False
    try:
        if pcap:
            from recon.pcap import LINKTYPE_RAW, PcapWriter

            writer = PcapWriter(pcap, LINKTYPE_RAW)
        if on_ready:
            on_ready(packet)
        for i in range(count):
            try:
                if i:
                    time.sleep(interval)
                _send_one(sender, packet, sent)
            except KeyboardInterrupt:  # Ctrl-C: stop, and still report what went out
                interrupted = True
                break
            sent += 1
            if writer:
                writer.write(packet.data)
    finally:
        sender.close()
        if writer:
            writer.close()
    return CraftResult(
        packet,
        chosen,
        sent,
        via,
        rewrites,
        getattr(sender, "iface", None),
        getattr(sender, "mac", None),
        pcap,
        writer.count if writer else 0,
        interrupted,
    )


def _check_send_options(via: str, count: int, interval: float) -> None:
    """--via, --count and --interval, checked before anything is built or sent."""
    if via not in VIAS:
        raise InvalidOption("--via", via, "one of " + ", ".join(VIAS))
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 1_000_000:
        raise InvalidOption("--count", count, "allowed 1..1000000")
    check_range("--interval", interval, 0, 3600, "seconds, 0..3600")


def _send_one(sender: _Sender, packet: CraftedPacket, sent: int) -> None:
    """One packet out; the kernel's refusals become recon errors (``sent``: how many went out before)."""
    try:
        sender.send(packet.data)
    except PermissionError:
        raise PrivilegeError("recon craft") from None
    except OSError as exc:
        if exc.errno == errno.EMSGSIZE:  # the user's packet is too big for the link: an input error
            raise InputError(f"{len(packet.data)} bytes is over the link MTU; raw and packet sockets do not fragment",
                             hint="send less data, or craft the fragments yourself with --mf and --frag-offset") from None
        raise ReconEnvironmentError(f"sending failed after {sent} packet(s): {exc.strerror or exc}",
                                    hint=_send_hint(exc, packet)) from None


def _send_hint(exc: OSError, packet: CraftedPacket) -> str:
    if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return f"no route to {packet.dst}"
    if exc.errno == errno.EINVAL:
        return "the kernel rejected the header (e.g. IHL larger than the packet)"
    return "see --debug"


def _dry_run_pcap(result: CraftResult, pcap: str | None) -> CraftResult:
    """A dry run still saves what was built (one record)."""
    if not pcap:
        return result
    from recon.pcap import LINKTYPE_RAW, PcapWriter

    with PcapWriter(pcap, LINKTYPE_RAW) as writer:
        writer.write(result.packet.data)
    return replace(result, pcap=pcap, pcap_written=writer.count)
