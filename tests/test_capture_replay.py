"""Live capture in-process: recon.capture reads a capture socket from the replay transport, fed with
frames recon recorded in the lab (captures/). No root, no lab: what the kernel's AF_PACKET socket
would hand over (the bytes, the sockaddr_ll fields, the SO_TIMESTAMPNS time) is delivered by hand,
and what recon makes of it is compared with the recording itself.
"""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path

import pytest

from recon.capture import LiveCapture, sniff
from recon.decode import decode
from recon.errors import PrivilegeError, ReconEnvironmentError
from recon.pcap import LINKTYPE_LINUX_SLL2, Frame, read_frames
from recon.transport import ReplaySocket, ReplayTransport
from tests.conftest import CAPTURES

SLL2 = struct.Struct("!HHIHBB8s")  # protocol, reserved, ifindex, hatype, pkttype, halen, address
LO_INDEX = socket.if_nametoindex("lo")


def _replay(interfaces: dict[str, tuple[int, bytes]] | None = None) -> tuple[ReplayTransport, list[ReplaySocket]]:
    transport = ReplayTransport(interfaces=interfaces)
    return transport, transport.sockets


def _feed_cooked(sock: ReplaySocket, frames: list[Frame], ifname: str = "lo") -> None:
    """Hand ``frames`` (Linux SLL2, as `recon sniff` records all interfaces) to a SOCK_DGRAM packet socket:
    the network-layer bytes, with the link fields as the kernel's sockaddr_ll gives them."""
    for fr in frames:
        proto, _, _, hatype, pkttype, halen, addr = SLL2.unpack_from(fr.data)
        sock.deliver(fr.data[SLL2.size:], source=(ifname, proto, pkttype, hatype, addr[:halen]), stamp_ns=fr.time_ns)


def test_all_interfaces_rebuilds_the_sll2_frames_it_recorded() -> None:
    """sweep.pcap was written by a live `recon sniff` on all interfaces: fed back through the socket, every
    frame comes out as recorded (link fields, bytes, kernel time), the ifindex being this machine's."""
    recorded = list(read_frames(str(CAPTURES / "sweep.pcap")))
    assert recorded and all(fr.linktype == LINKTYPE_LINUX_SLL2 for fr in recorded)
    transport, sockets = _replay()
    with LiveCapture(None, transport=transport) as live:
        assert live.linktype == LINKTYPE_LINUX_SLL2 and len(sockets) == 1
        _feed_cooked(sockets[0], recorded)
        got = list(live.frames(timeout=2.0))  # frames are queued already; the timeout only ends the read
    assert len(got) == len(recorded)
    for mine, theirs in zip(got, recorded, strict=True):
        assert mine.data[:4] == theirs.data[:4] and mine.data[8:] == theirs.data[8:]
        assert struct.unpack_from("!I", mine.data, 4)[0] == LO_INDEX
        assert (mine.time_ns, mine.wirelen, mine.interface) == (theirs.time_ns, theirs.wirelen, "lo")


def test_live_packets_decode_as_the_same_file_read_back(tmp_path: Path) -> None:
    """sniff() live and sniff(read=) of what it wrote give the same packets; -w keeps every kept frame."""
    recorded = list(read_frames(str(CAPTURES / "sweep.pcap")))
    transport, sockets = _replay()
    out = tmp_path / "live.pcap"
    packets = sniff(count=len(recorded), write=out, transport=transport)
    _feed_cooked(sockets[0], recorded)
    live = list(packets)
    assert sockets[0].closed  # the generator closed the capture when the count was reached
    again = list(sniff(read=out))
    assert len(live) == len(again) == len(recorded)
    for a, b, fr in zip(live, again, recorded, strict=True):
        assert (a.ip, a.icmp_type, a.icmp_id, a.sport, a.problems) == (b.ip, b.icmp_type, b.icmp_id, b.sport, b.problems)
        assert a.ip == decode(fr.data, fr.linktype).ip and a.time_ns == fr.time_ns


def _cooked(fr: Frame) -> tuple[bytes, tuple[str, int, int, int, bytes]]:
    """An Ethernet frame as a SOCK_DGRAM packet socket reads it: the payload, and the sockaddr_ll fields."""
    return fr.data[14:], ("lo", int.from_bytes(fr.data[12:14], "big"), 0, 1, fr.data[6:12])


def test_proto_keeps_exactly_one_protocol() -> None:
    """--proto icmp is folded into the kernel filter live, and checked again per packet: from a socket that does
    not filter, ICMP over IPv4 is kept, and ICMPv6, ARP and UDP (sweep.pcap, crafted-spoofed.pcap) are not."""
    sll2 = list(read_frames(str(CAPTURES / "sweep.pcap")))
    ether = list(read_frames(str(CAPTURES / "crafted-spoofed.pcap")))
    wanted = [fr.data[SLL2.size:] for fr in sll2 if fr.data[:2] == b"\x08\x00" and fr.data[SLL2.size + 9] == 1]
    wanted += [fr.data[14:] for fr in ether if fr.data[12:14] == b"\x08\x00" and fr.data[14 + 9] == 1]
    transport, sockets = _replay()
    packets = sniff(proto="icmp", timeout=2.0, transport=transport)
    assert sockets[0].options.get((socket.SOL_SOCKET, 26))  # SO_ATTACH_FILTER: the kernel got a program
    _feed_cooked(sockets[0], sll2)
    for fr in ether:
        data, source = _cooked(fr)
        sockets[0].deliver(data, source=source, stamp_ns=fr.time_ns)
    kept = [p.data[SLL2.size:] for p in packets]
    assert kept == wanted and 0 < len(kept) < len(sll2) + len(ether)
    assert any(fr.data[12:14] == b"\x08\x00" and fr.data[14 + 9] == 17 for fr in ether)  # UDP was offered


def test_one_interface_reads_whole_frames_in_its_own_link_type(tmp_path: Path) -> None:
    """-i on an Ethernet interface: SOCK_RAW, frames as they were on the wire, and the -w file is the
    Ethernet recording again, byte for byte and to the nanosecond."""
    recorded = list(read_frames(str(CAPTURES / "ping-errors.pcap")))
    transport, sockets = _replay({"lo": (1, bytes.fromhex("025245430002"))})
    out = tmp_path / "lo.pcap"
    packets = sniff(iface="lo", count=len(recorded), write=out, transport=transport)
    assert sockets[0].bound == ("lo", 0x0003)  # bound after the filter, to ETH_P_ALL
    for fr in recorded:
        sockets[0].deliver(fr.data, source=("lo", 0x0800, 0, 1, fr.data[6:12]), stamp_ns=fr.time_ns)
    assert len(list(packets)) == len(recorded)
    again = list(read_frames(str(out)))
    assert [(f.linktype, f.data, f.time_ns) for f in again] == [(1, f.data, f.time_ns) for f in recorded]


def test_a_quiet_capture_ends_at_its_timeout() -> None:
    transport, _ = _replay()
    began = time.monotonic()
    assert list(sniff(timeout=0.2, transport=transport)) == []
    assert 0.15 < time.monotonic() - began < 10  # ends, and not before its time (a loaded machine may be late)


def test_an_interface_that_goes_away_ends_the_capture_with_one_error() -> None:
    """The socket fails under the capture (the kernel says ENETDOWN or ENODEV; here the socket is gone):
    one ReconEnvironmentError that says what happened and what to do, not an OSError."""
    transport, sockets = _replay()
    packets = sniff(timeout=5, transport=transport)
    sockets[0].close()
    with pytest.raises(ReconEnvironmentError) as caught:
        list(packets)
    assert "capture on all interfaces ended" in str(caught.value) and "start recon sniff again" in str(caught.value)
    assert caught.value.exit_status == 3 and not isinstance(caught.value.__cause__, OSError)


def test_without_privileges_a_live_capture_is_refused_before_anything_is_read() -> None:
    with pytest.raises(PrivilegeError) as caught:
        sniff(transport=ReplayTransport(dgram_only=True))
    assert caught.value.exit_status == 3 and "live capture" in str(caught.value) and "CAP_NET_RAW" in str(caught.value)
