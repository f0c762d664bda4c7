"""recon/ndp.py without a lab: the frames of captures/ndp.pcap (recorded in the lab, see captures/README.md)
answer what ndp sends through the replay transport (recon/transport.py). The truth is the lab's layout
(recon/labbuild.py): which host has which MAC and which addresses."""

from __future__ import annotations

import errno
import ipaddress
import struct
import time

import pytest

from recon import ndp
from recon.errors import InvalidOption, InvalidTarget, ReconEnvironmentError
from recon.labbuild import LAN_HOSTS, ROUTER_MAC, SCANNER_MAC, link_local
from recon.models import HostResult, ScopedTarget
from recon.packets import inet_checksum
from recon.pcap import read_frames
from recon.transport import ReplaySocket, ReplayTransport, Sent
from tests.conftest import CAPTURES, run_cli

PCAP = CAPTURES / "ndp.pcap"
SCANNER = bytes.fromhex(SCANNER_MAC.replace(":", ""))
# address → MAC of everything on the lab's LAN but us: the five hosts (global and link-local) and the router
# (2001:db8::1, its link-local, and its subnet-router anycast 2001:db8::)
TRUTH = {f"2001:db8::{o}": m for _, o, m, _ in LAN_HOSTS} | {link_local(m): m for _, _, m, _ in LAN_HOSTS} | {
    "2001:db8::1": ROUTER_MAC, link_local(ROUTER_MAC): ROUTER_MAC, "2001:db8::": ROUTER_MAC}


def _frames() -> list[bytes]:
    return [bytes(f.data) for f in read_frames(str(PCAP))]


def _checksum(frame: bytearray) -> bytes:
    """The frame with its ICMPv6 checksum made right again (after a field was rewritten)."""
    size = int.from_bytes(frame[18:20], "big")
    frame[56:58] = b"\0\0"
    frame[56:58] = inet_checksum(bytes(frame[22:54]) + struct.pack("!I3xB", size, 58) + bytes(frame[54:54 + size])).to_bytes(2, "big")
    return bytes(frame)


class Link:
    """The recorded LAN as a responder: a solicitation gets the recorded advertisement for its target, an echo
    to a group gets every recorded reply to a source of the same scope, each fitted to the asker (addresses, id,
    seq, payload, checksum) as the hosts' kernels answer. Nothing else in the frames changes."""

    def __init__(self) -> None:
        self.adverts: dict[bytes, bytes] = {}
        self.replies: list[bytes] = []
        for f in _frames():
            if f[0:6] != SCANNER or f[12:14] != b"\x86\xdd" or f[20] != 58:
                continue  # only what came to us
            if f[54] == 136 and f[21] == 255:
                self.adverts.setdefault(f[62:78], f)
            elif f[54] == 129:
                self.replies.append(f)

    def __call__(self, sock: ReplaySocket, sent: Sent) -> list[bytes]:
        frame = sent.data
        if sent.kind != "packet" or len(frame) < 62 or frame[12:14] != b"\x86\xdd":
            return []
        if frame[54] == 135:
            advert = self.adverts.get(frame[62:78])
            if advert is None:
                return []
            out = bytearray(advert)
            out[0:6], out[38:54] = frame[6:12], frame[22:38]
            return [_checksum(out)]
        if frame[54] == 128 and frame[38] == 0xFF:
            link_local = frame[22:24] == b"\xfe\x80"
            answers = []
            for reply in self.replies:
                if (reply[38:40] == b"\xfe\x80") != link_local:
                    continue
                size = len(frame) - 54
                out = bytearray(reply[:54]) + bytearray(frame[54:])
                out[0:6], out[38:54], out[54] = frame[6:12], frame[22:38], 129
                out[18:20] = size.to_bytes(2, "big")
                answers.append(_checksum(out))
            return answers
        return []


@pytest.fixture(scope="module")
def link() -> Link:
    return Link()


def _up(result) -> dict[str, str]:
    return {h.address.split("%")[0]: h.mac for h in result.hosts if h.status == "up" and h.reason != "self"}


def test_the_recording_holds_the_lab(link: Link) -> None:
    """Every advertisement in the capture parses to its target and the MAC the lab gave it; the echo replies
    came from every host's fe80:: and global address."""
    parsed = {str(ipaddress.IPv6Address(t)): m.hex(":") for t, m in map(ndp.parse_advert, link.adverts.values())}
    assert parsed == TRUTH
    sources = {str(ipaddress.IPv6Address(r[22:38])) for r in link.replies}
    assert sources == set(TRUTH) - {"2001:db8::"}  # an anycast address never sources an echo reply


def test_parse_advert_refuses_what_rfc4861_discards(link: Link) -> None:
    """A hop limit below 255 (it crossed a router), a bad checksum, a zero-length option, a short message and
    a code other than 0 are not advertisements; neither is an echo reply."""
    good = link.adverts[ipaddress.IPv6Address("2001:db8::10").packed]
    assert ndp.parse_advert(good) is not None
    hop = bytearray(good)
    hop[21] = 64
    assert ndp.parse_advert(bytes(hop)) is None
    flipped = bytearray(good)
    flipped[70] ^= 1
    assert ndp.parse_advert(bytes(flipped)) is None
    zero = bytearray(good)
    zero[79] = 0  # the option's length
    assert ndp.parse_advert(_checksum(zero)) is None
    code = bytearray(good)
    code[55] = 1
    assert ndp.parse_advert(_checksum(code)) is None
    assert ndp.parse_advert(good[:70]) is None
    assert ndp.parse_advert(link.replies[0]) is None and ndp.parse_echo_reply(link.replies[0]) is not None


def test_solicit_finds_the_recorded_hosts(link: Link) -> None:
    """2001:db8::/123, the hosts' fe80:: addresses and a silent one: up with the lab's MACs and vendors, our
    own address self, the rest down; one retry of the silent; every NS as RFC 4861 wants it (checked by Scapy)."""
    transport = ReplayTransport(link)
    targets = [f"2001:db8::{i:x}" for i in range(32)] + [link_local(m) for _, _, m, _ in LAN_HOSTS] + ["fe80::99"]
    result = ndp.solicit("eth0", targets, transport=transport, timeout=0.05, retries=1)
    assert _up(result) == {a: m for a, m in TRUTH.items() if a in {str(ipaddress.IPv6Address(t)) for t in targets}}
    rows = {h.address: h for h in result.hosts}
    assert rows["2001:db8::2"].reason == "self" and rows["2001:db8::2"].mac == SCANNER_MAC
    assert rows["fe80::99%eth0"].status == "down" and rows["2001:db8::1f"].status == "down"
    assert rows["2001:db8::10"].vendor == "Apple, Inc." and rows[f"{link_local(LAN_HOSTS[1][2])}%eth0"].vendor.startswith("Raspberry")
    silent = len(targets) - len(_up(result)) - 1
    assert result.stats.sent == len(targets) - 1 + silent and result.stats.retries == silent
    from scapy.layers.inet6 import ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, IPv6
    from scapy.layers.l2 import Ether

    for sent in transport.sent:
        frame = Ether(sent.data)
        tgt = ipaddress.IPv6Address(frame[ICMPv6ND_NS].tgt)
        group = ipaddress.IPv6Address(int(ipaddress.IPv6Address("ff02::1:ff00:0")) | int(tgt) & 0xFFFFFF)
        assert frame[IPv6].dst == str(group) and frame.dst == "33:33:" + group.packed[12:].hex(":")
        assert frame[IPv6].hlim == 255 and frame[ICMPv6NDOptSrcLLAddr].lladdr == SCANNER_MAC
        assert frame[IPv6].src == ("fe80::52:45ff:fe43:2" if tgt.is_link_local else "2001:db8::2")
        redone = Ether(sent.data)
        redone[ICMPv6ND_NS].cksum = None
        assert Ether(bytes(redone))[ICMPv6ND_NS].cksum == frame[ICMPv6ND_NS].cksum


def test_solicit_retries_through_loss(link: Link) -> None:
    """With half the answers lost, five retries find every host where none finds only some (same seed)."""
    hosts = [f"2001:db8::{o}" for _, o, _, _ in LAN_HOSTS]
    none = ndp.solicit("eth0", hosts, transport=ReplayTransport(link, loss=0.5, seed=3), timeout=0.02, retries=0)
    five = ndp.solicit("eth0", hosts, transport=ReplayTransport(link, loss=0.5, seed=3), timeout=0.02, retries=5)
    assert len(none.up) < len(hosts) and len(five.up) == len(hosts) and five.stats.retries > 0


def test_solicit_paces_with_rate(link: Link) -> None:
    """--rate 100: the solicitations keep a 10 ms schedule: the i-th never leaves before i * 10 ms. (A schedule,
    not a sleep each: a send that a busy machine delays is followed by a shorter gap, so single gaps prove nothing.)"""
    transport = ReplayTransport(link)
    start = time.monotonic()  # the schedule starts before the first frame is built: a slow first send is no anchor
    ndp.solicit("eth0", [f"2001:db8::{i:x}" for i in range(0x20, 0x28)], transport=transport, timeout=0, retries=0, rate=100)
    times = [s.time for s in transport.sent]
    assert len(times) == 8
    assert all(t - start >= i * 0.01 - 0.0005 for i, t in enumerate(times)), [t - start for t in times]


def test_multicast_echo_hears_the_link(link: Link) -> None:
    """From our fe80:: address (as ping) the hosts and the router answer from theirs; with every_source, from
    our global address too, their global addresses answer as well; every row has its MAC and hop limit."""
    as_ping = ndp.multicast_echo("eth0", transport=ReplayTransport(link), timeout=0.02, retries=0)
    every = ndp.multicast_echo("eth0", transport=ReplayTransport(link), timeout=0.02, retries=0, every_source=True)
    fe80 = {a: m for a, m in TRUTH.items() if a.startswith("fe80::")}
    assert _up(as_ping) == fe80 and all(h.address.endswith("%eth0") for h in as_ping.hosts)
    assert _up(every) == {a: m for a, m in TRUTH.items() if a != "2001:db8::"}
    assert {h.address for h in every.hosts if h.reason == "self"} == {"2001:db8::2", "fe80::52:45ff:fe43:2%eth0"}
    assert {h.ttl for h in every.up if h.reason == "echo-reply"} == {64}
    assert (as_ping.stats.sent, every.stats.sent, every.stats.duplicates) == (1, 2, 0)


def test_a_retried_echo_is_no_duplicate(link: Link) -> None:
    """Each round echoes again and everyone answers again: those answers are not duplicates, and the first
    round's answer (its RTT) stays."""
    result = ndp.multicast_echo("eth0", transport=ReplayTransport(link), timeout=0.02, retries=2)
    assert result.stats.sent == 3 and result.stats.duplicates == 0 and result.stats.received == 3 * 6


def test_discover_scoped_targets_and_merge(link: Link) -> None:
    """discover(): a scoped unicast target by NDP, the group by echo; one row per address, methods joined."""
    phone = link_local(LAN_HOSTS[0][2])
    scoped = [ScopedTarget(phone, "eth0", 2), ScopedTarget("fe80::99", "eth0", 2), ScopedTarget("ff02::1", "eth0", 2, multicast=True)]
    result = ndp.discover(scoped, transport=ReplayTransport(link), timeout=0.02, retries=0)
    rows = [h.address for h in result.hosts]
    assert len(rows) == len(set(rows)) and result.stats.method == "ndp+mcast-echo"
    assert {h.address for h in result.hosts if h.status == "down"} == {"fe80::99%eth0"}
    assert _up(result) == {a: m for a, m in TRUTH.items() if a.startswith("fe80::")}
    assert result.stats.targets == len(rows)


def test_found_gets_the_row_the_result_holds(link: Link) -> None:
    """A host's row is built once, as it answers: what ``found`` gets is the row the result holds (before, the result
    built every row again at the end), for solicited hosts and echo responders alike; the silent still get a row."""
    got: list[HostResult] = []
    hosts = [f"2001:db8::{o}" for _, o, _, _ in LAN_HOSTS] + ["2001:db8::99"]
    solicited = ndp.solicit("eth0", hosts, transport=ReplayTransport(link), timeout=0.02, retries=0, found=got.append)
    echoed = ndp.multicast_echo("eth0", transport=ReplayTransport(link), timeout=0.02, retries=0, found=got.append)
    held = {h.address: h for h in (*solicited.hosts, *echoed.hosts)}
    assert len(got) == len(LAN_HOSTS) + 6 and all(held[h.address] is h for h in got)
    assert held["2001:db8::99"].status == "down"


def test_local_solicits_only_a_small_prefix(link: Link) -> None:
    """--local on a link whose prefix is a /123 solicits its 32 addresses (the anycast 2001:db8:: answers);
    on a /64 it only echoes."""
    small = ReplayTransport(link, addresses6={"eth0": (("2001:db8::2", 123, False), (link_local(SCANNER_MAC), 64, True))})
    result = ndp.discover(local=["eth0"], transport=small, timeout=0.02, retries=0)
    assert result.stats.method == "mcast-echo+ndp" and "2001:db8::" in _up(result)
    wide = ndp.discover(local=["eth0"], transport=ReplayTransport(link), timeout=0.02, retries=0)
    assert wide.stats.method == "mcast-echo" and "2001:db8::" not in _up(wide)


def test_a_stop_ends_the_running_part_within_a_slice_and_starts_no_other(link: Link) -> None:
    """stopped() turning True (Ctrl-C: the stream's flag, set from the main thread) ends --local's multicast echo
    in its 5 s wait at the next STOP_SLICE, with what answered; no retry round and no solicitation of the small
    prefix follow. A paced solicitation sends nothing more either (its schedule's waits end at once then, and
    must not turn into a burst)."""
    small = ReplayTransport(link, addresses6={"eth0": (("2001:db8::2", 123, False), (link_local(SCANNER_MAC), 64, True))})
    found: list[HostResult] = []
    start = time.monotonic()
    parts = list(ndp.discover_parts(local=["eth0"], transport=small, timeout=5, retries=2, found=found.append,
                                    stopped=lambda: bool(found)))
    took = time.monotonic() - start
    assert took < 5 / 2 and found, took
    assert [p.stats.method for p in parts] == ["mcast-echo"] and {h.address for h in found} <= {h.address for h in parts[0].up}
    assert [bytes(s.data)[54] for s in small.sent] == [128, 128]  # the first round's echo from each source, and no more
    paced = ReplayTransport(link)
    hosts = [f"2001:db8::{o}" for _, o, _, _ in LAN_HOSTS] + [f"2001:db8::{i:x}" for i in range(0x20, 0x28)]
    heard: list[HostResult] = []
    result = ndp.solicit("eth0", hosts, transport=paced, timeout=5, retries=2, rate=50, found=heard.append,
                         stopped=lambda: bool(heard))
    assert len(paced.sent) == 1 and len(result.up) == 1 and result.stats.retries == 0


def test_a_stop_ends_the_ipv6_parts_neighbor_discovery_too(link: Link) -> None:
    """Scoped link-local targets in a sweep (not --local) go to ndp from engine6, on the IPv6 part's thread: the
    stream's stop() (Ctrl-C), here as soon as the first solicitations leave, ends their 5 s wait within a slice,
    with no retry round (the old code did not pass the stop on: 5.1 s, the whole wait)."""
    from recon.engine import Prober
    from recon.targets import build_targets

    streams: list = []

    def respond(sock: ReplaySocket, sent: Sent) -> list[bytes]:
        answers = link(sock, sent)
        streams[0].stop()  # from the ndp thread, as the signal handler does from the main one
        return answers

    transport = ReplayTransport(respond)
    targets = [f"{link_local(m)}%eth0" for _, _, m, _ in LAN_HOSTS] + ["fe80::99%eth0"]
    prober = Prober(transport=transport)
    try:
        start = time.monotonic()
        with prober.sweep_iter(build_targets(targets), timeout=5, retries=2) as stream:
            streams.append(stream)
            list(stream)
        took = time.monotonic() - start
    finally:
        prober.close()
    assert stream.interrupted and took < 5 / 2, took
    assert len(transport.sent) == len(targets), "one round's solicitations, no retry of the silent"
    assert all(bytes(s.data)[54] == 135 for s in transport.sent)


@pytest.mark.parametrize(("transport", "message"), [
    (ReplayTransport(), "no such interface"),
    (ReplayTransport(interfaces={"tun0": (65534, bytes(6))}), "not an Ethernet interface"),
    (ReplayTransport(addresses6={"tun0": ()}, interfaces={"tun0": (1, SCANNER)}), "no IPv6 link-local address"),
])
def test_interfaces_ndp_cannot_use(transport: ReplayTransport, message: str) -> None:
    """No such interface, not Ethernet, no link-local address: InvalidOption naming the option, nothing sent."""
    with pytest.raises(InvalidOption, match=message):
        ndp.solicit("tun0", ["fe80::1"], transport=transport)
    with pytest.raises(InvalidOption, match="--local"):
        ndp.discover(local=["tun0"], transport=transport)
    with pytest.raises(InvalidTarget, match=message):
        ndp.discover([ScopedTarget("fe80::1", "tun0", 9)], transport=transport)
    assert transport.sent == []


def test_bad_targets_and_options() -> None:
    """A group is no NS target, a unicast address no group; the timeout and retries have the engine's bounds."""
    t = ReplayTransport()
    with pytest.raises(InvalidTarget, match="unicast"):
        ndp.solicit("eth0", ["ff02::1"], transport=t)
    with pytest.raises(InvalidTarget, match="multicast group"):
        ndp.multicast_echo("eth0", transport=t, group="fe80::1")
    with pytest.raises(InvalidOption, match="--timeout"):
        ndp.solicit("eth0", ["fe80::1"], transport=t, timeout=-1)
    with pytest.raises(InvalidOption, match="--retries"):
        ndp.multicast_echo("eth0", transport=t, retries=101)
    assert t.sent == []


def test_merge_keeps_one_row_per_address(link: Link) -> None:
    """An address up in one part and down in another is up once; counters add up."""
    t = ReplayTransport(link)
    a = ndp.solicit("eth0", ["2001:db8::10", "2001:db8::99"], transport=t, timeout=0.02, retries=0)
    b = ndp.solicit("eth0", ["2001:db8::99", "2001:db8::11"], transport=t, timeout=0.02, retries=0)
    merged = ndp.merge([a, b])
    assert [(h.address, h.status) for h in merged.hosts] == [("2001:db8::10", "up"), ("2001:db8::11", "up"),
                                                             ("2001:db8::99", "down")]
    assert merged.stats.sent == a.stats.sent + b.stats.sent == 4 and merged.stats.method == "ndp"


@pytest.mark.parametrize(("args", "message"), [
    (["--local", "nosuch0"], "invalid --local 'nosuch0': no such interface"),
    (["--local", "no/such"], "invalid --local 'no/such'"),
    (["--local", "nosuch0", "--cluster", "local:1"], "--local cannot be combined with --cluster"),
    (["--local", "nosuch0", "198.18.0.1", "-w", "x.pcap"], "invalid --local 'nosuch0': no such interface"),
])
def test_cli_refuses_bad_local_before_sending(args: list[str], message: str) -> None:
    """One line, exit 2: each refusal comes before any socket opens (an interface that is nowhere)."""
    res = run_cli("sweep", *args)
    assert res.code == 2 and res.stdout == "" and res.stderr.count("\n") == 1 and message in res.stderr, res.stderr


def test_source_sends_everything_from_that_address(link: Link) -> None:
    """--source 2001:db8::2: the NS for a link-local target and the group echo go from it (the hosts answer it:
    from their global addresses, for the echo); an address the interface lacks is InvalidOption, nothing sent."""
    t = ReplayTransport(link)
    phone = link_local(LAN_HOSTS[0][2])
    result = ndp.solicit("eth0", [phone], transport=t, timeout=0.02, retries=0, source="2001:db8::2")
    assert _up(result) == {phone: LAN_HOSTS[0][2]} and t.sent[0].data[22:38] == ipaddress.IPv6Address("2001:db8::2").packed
    echo = ndp.multicast_echo("eth0", transport=ReplayTransport(link), timeout=0.02, retries=0, source="2001:db8::2")
    assert _up(echo) == {a: m for a, m in TRUTH.items() if a.startswith("2001:db8::") and a != "2001:db8::"}
    bad = ReplayTransport(link)
    for call in (lambda: ndp.solicit("eth0", [phone], transport=bad, source="2001:db8::99"),
                 lambda: ndp.multicast_echo("eth0", transport=bad, source="198.18.0.2"),
                 lambda: ndp.discover(local=["eth0"], transport=bad, source="fe80::1")):
        with pytest.raises(InvalidOption, match=r"--source .*an IPv6 address of eth0"):
            call()
    assert bad.sent == []


def test_the_kernel_filter_keeps_what_tcpdump_keeps() -> None:
    """ndp's hand-assembled socket filter keeps, in every Ethernet capture, exactly the frames tcpdump's own
    program for 'ICMPv6 echo reply or neighbor advertisement' keeps: the answers of ndp.pcap, no solicitation,
    no echo request, no ARP."""
    from recon.bpf import bpf_match, compile_bpf
    from recon.decode import LINKTYPE_ETHERNET
    from tests.conftest import need_tool

    need_tool("tcpdump")
    reference = compile_bpf("ip6[6] == 58 and (ip6[40] == 129 or ip6[40] == 136)", LINKTYPE_ETHERNET)
    kept = 0
    for path in sorted(CAPTURES.iterdir()):
        if path.suffix not in (".pcap", ".pcapng"):
            continue
        for f in read_frames(str(path)):
            if f.linktype != LINKTYPE_ETHERNET:
                continue
            ours = bpf_match(ndp.ANSWERS_FILTER, bytes(f.data))
            assert ours == bpf_match(reference, bytes(f.data)), (path.name, bytes(f.data)[:60].hex())
            kept += ours and path.name == "ndp.pcap"
    frames = _frames()
    answers = [f for f in frames if f[12:14] == b"\x86\xdd" and f[20] == 58 and f[54] in (129, 136)]
    assert kept == len(answers) > 20 and len(frames) > kept


# --- --local through the sweep engine (Prober.sweep_iter(local=...)), and the CLI on top of it ------------------


def _link_and_rec(link: Link):  # -> Responder
    """The recorded LAN (NDP) and the recorded routed replies of captures/sweep.pcap, as one network."""
    from tests.test_sweep_replay import REC

    return lambda sock, sent: link(sock, sent) or REC(sock, sent)


def test_local_streams_each_host_as_it_answers_after_the_ipv4_part(link: Link) -> None:
    """sweep_iter(local="eth0"): the IPv4 hosts come first; each host on the link comes as soon as it answers the
    multicast echo, not when the echo's 0.5 s wait ends; then the small prefix's other answers (the anycast
    2001:db8::) and, with down, its silent addresses last; an address once, and the counters of both parts."""
    import time

    import recon
    from recon.targets import build_targets

    small = ReplayTransport(_link_and_rec(link), addresses6={"eth0": (("2001:db8::2", 123, False),
                                                                      (link_local(SCANNER_MAC), 64, True))})
    came: list[tuple[HostResult, float]] = []  # (row, when)
    with recon.sweep_iter(build_targets(["198.18.2.0/29"]), method="icmp", probe="echo", timeout=0.5, retries=0,
                          transport=small, local="eth0") as stream:
        for batch in stream.batches():
            came += [(h, time.monotonic()) for h in batch]
    rows = [h for h, _ in came]
    assert [h.address for h in rows[:8]] == [f"198.18.2.{i}" for i in range(8)]
    echo_sent = next(s.time for s in small.sent if s.kind == "packet")
    heard = [(h, at) for h, at in came if h.reason == "echo-reply" and ":" in h.address]
    assert {h.address.split("%")[0] for h, _ in heard} == set(TRUTH) - {"2001:db8::"}
    assert heard[0][1] - echo_sent < 0.25, "the first echo answer was held until the echo's wait ended"
    assert rows[-24:] == sorted(rows[-24:], key=lambda h: ipaddress.IPv6Address(h.address)) and all(
        h.status == "down" for h in rows[-24:])  # the prefix's silent: 32 but 2001:db8::, ::1, ::2 and ::10-14
    assert "2001:db8::" in {h.address for h in rows if h.status == "up"}
    assert len(rows) == len({h.address for h in rows}) == 8 + 14 + 1 + 24
    assert stream.stats.targets == len(rows) and stream.stats.method == "icmp"


def test_local_asks_the_link_while_the_ipv4_part_waits(link: Link) -> None:
    """sweep_iter(local="eth0") beside a silent IPv4 target that keeps the IPv4 part waiting its 1 s: the link is
    asked at once, beside the IPv4 part (it was asked only once the IPv4 part's wait had ended, so the sweep took
    the sum of the two waits: no frame of the link's had left when the IPv4 part's down row came), and its rows
    still come after the IPv4 part's, the hosts it found meanwhile at once; an address once."""
    import recon
    from recon.targets import build_targets

    transport = ReplayTransport(_link_and_rec(link))  # eth0's /64 is too big to solicit: the echo alone
    came: list[tuple[HostResult, int]] = []  # (row, frames sent on the link by then)
    with recon.sweep_iter(build_targets(["198.18.2.0/29", "198.18.1.1"]), method="icmp", probe="echo", timeout=1,
                          retries=0, transport=transport, local="eth0") as stream:
        for batch in stream.batches():
            frames = sum(1 for s in transport.sent if s.kind == "packet")
            came += [(h, frames) for h in batch]
    rows = [h for h, _ in came]
    last4 = max(i for i, h in enumerate(rows) if ":" not in h.address)
    assert (rows[last4].address, rows[last4].status) == ("198.18.1.1", "down")
    assert came[last4][1] == 2, "the link's echoes (one from each address) left only after the IPv4 part's wait"
    assert last4 == 8 and {h.address for h in rows[:8]} == {f"198.18.2.{i}" for i in range(8)}
    assert {h.address.split("%")[0] for h in rows[9:]} == set(TRUTH) - {"2001:db8::"} | {"2001:db8::2", link_local(SCANNER_MAC)}
    assert len(rows) == len({h.address for h in rows}) and stream.stats.targets == len(rows)


def test_cli_local_with_other_targets_writes_one_ethernet_pcap(link: Link, tmp_path) -> None:
    """recon sweep --local eth0 198.18.2.0/29 -w F (refused before: one line, exit 2): every row, and one pcap
    of link type Ethernet holding the framed IPv4 probes and replies and the link's frames, which sniff reads."""
    import json

    from recon.decode import LINKTYPE_ETHERNET
    from tests.conftest import offline

    pcap = tmp_path / "both.pcap"
    with offline(ReplayTransport(_link_and_rec(link))) as transport:
        res = run_cli("sweep", "--local", "eth0", "198.18.2.0/29", "--method", "icmp", "--probe", "echo", "-W", "0.05",
                      "-r", "0", "--json", "-w", str(pcap))
    assert res.code == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["address"] for r in rows[:8]] == [f"198.18.2.{i}" for i in range(8)]
    assert {r["address"].split("%")[0] for r in rows[8:]} == set(TRUTH) - {"2001:db8::"} | {"2001:db8::2", link_local(SCANNER_MAC)}
    assert res.stderr.startswith(f"{len(rows)} hosts up of {len(rows)} scanned")
    frames = list(read_frames(str(pcap)))
    assert {f.linktype for f in frames} == {LINKTYPE_ETHERNET}
    types = [bytes(f.data)[12:14] for f in frames]
    assert types.count(b"\x08\x00") == 16 and types.count(b"\x86\xdd") == 2 + 6 + 6  # 8 echoes, 8 replies; 2 + 12 on the link
    sent = [s for s in transport.sent if s.kind == "packet"]
    assert [bytes(f.data) for f in frames if f.data[12:14] == b"\x86\xdd" and f.data[6:12] == SCANNER] == [s.data for s in sent]
    sniff = run_cli("sniff", "-r", str(pcap), "-n")
    assert sniff.code == 0 and sniff.stdout.count("\n") == len(frames), sniff.stderr


def test_local_is_checked_before_anything_is_sent(link: Link) -> None:
    """sweep_iter(local=...): an interface ndp cannot use, an IPv4 --source with nothing IPv4 to sweep, an IPv6
    --source the link lacks: InvalidOption before the first packet, and no pcap file made."""
    import recon
    from recon.targets import TargetSet, build_targets

    t = ReplayTransport(link)
    calls = [(lambda: recon.sweep_iter(build_targets(["198.18.2.0/29"]), transport=t, local="nosuch0", pcap="/nonexistent/x"),
              "invalid --local 'nosuch0'"),
             (lambda: recon.sweep_iter(TargetSet(), transport=t, local=["eth0"], source="198.18.0.2"), "IPv4 address cannot send"),
             (lambda: recon.sweep_iter(TargetSet(), transport=t, local=["eth0"], source="2001:db8::99"), "an IPv6 address of eth0")]
    for call, message in calls:
        with pytest.raises(InvalidOption, match=message):
            call()
    assert t.sent == []


def _stamped(link: Link, late_ns: int):
    """The recorded link, each answer carrying the kernel receive time (SO_TIMESTAMPNS) ``late_ns`` after the
    moment it is queued, which is inside the send: Python reads it at once, the kernel says it came later."""
    def respond(sock: ReplaySocket, sent: Sent) -> list[bytes]:
        for frame in link(sock, sent):
            sock.deliver(frame, stamp_ns=time.time_ns() + late_ns)
        return []
    return respond


def test_ndp_rtts_are_the_kernel_receive_time_less_the_send_time(link: Link) -> None:
    """An advertisement (and an echo reply) the kernel stamped 40 ms after the frame left reads 40 ms, though
    Python reads it at once: the RTT is SO_TIMESTAMPNS less the time taken at the send, not when Python got to
    the frame (before, it was the read time, here well under a millisecond). Above, each RTT is bounded by
    40 ms plus the call's own length (its send time is taken inside the call, the stamp 40 ms after a moment
    inside it), not by a fixed margin a loaded machine could use up."""
    hosts = [f"2001:db8::{o}" for _, o, _, _ in LAN_HOSTS]
    start = time.monotonic()
    solicited = ndp.solicit("eth0", hosts, transport=ReplayTransport(_stamped(link, 40_000_000)), timeout=0.02, retries=0)
    solicit_ms = (time.monotonic() - start) * 1000
    start = time.monotonic()
    echoed = ndp.multicast_echo("eth0", transport=ReplayTransport(_stamped(link, 40_000_000)), timeout=0.02, retries=0)
    echo_ms = (time.monotonic() - start) * 1000
    rtts = [(h.rtt_ms, took) for hosts_up, took in ((solicited.up, solicit_ms), (echoed.up, echo_ms))
            for h in hosts_up if h.reason != "self"]
    assert len(rtts) == len(hosts) + 6 and all(40.0 <= r < 40.0 + took + 1 for r, took in rtts), rtts


def test_ndp_frames_go_out_in_batches(link: Link) -> None:
    """A prefix's solicitations go 64 to a sendmmsg(2), not one send each; the echo from every source is one call."""
    transport = ReplayTransport(link)
    ndp.solicit("eth0", [f"2001:db8::{i:x}" for i in range(200)], transport=transport, timeout=0, retries=0)
    assert (len(transport.sent), transport.send_calls) == (199, 4)  # our own 2001:db8::2 is not asked
    echo = ReplayTransport(link)
    ndp.multicast_echo("eth0", transport=echo, timeout=0, retries=0, every_source=True)
    assert (len(echo.sent), echo.send_calls) == (2, 1)


def test_an_interface_that_goes_down_mid_ndp_is_one_line_not_a_silent_link(link: Link) -> None:
    """The one send policy (transport.INTERFACE_LOST): ENETDOWN on the send ends the run with a ReconEnvironmentError
    (exit 3, one line), as the sweep engines do; before, each frame counted as a send error and every target read
    as down."""
    transport = ReplayTransport(link, refuse=lambda sock, data, address: errno.ENETDOWN)
    with pytest.raises(ReconEnvironmentError, match="went away or down"):
        ndp.solicit("eth0", ["2001:db8::10"], transport=transport, timeout=0.02, retries=0)


def test_local_counts_each_address_once_without_all_too(link: Link) -> None:
    """sweep_iter(local="eth0") over IPv6 targets on that link (its /123, which --local solicits too; the IPv6
    part's ICMPv6 echoes go unanswered here): without down (no --all) the IPv6 part gives its silent targets no
    row, so the overlap of the two parts was found only among the answered: the silent addresses of both, and
    those only the link answered, were counted twice in stats.targets. The same count with and without down:
    each address once."""
    import recon
    from recon.targets import build_targets

    def swept(down: bool) -> tuple[list[HostResult], int]:
        small = ReplayTransport(link, addresses6={"eth0": (("2001:db8::2", 123, False), (link_local(SCANNER_MAC), 64, True))})
        with recon.sweep_iter(build_targets(["2001:db8::/123"]), method="icmp", probe="echo", timeout=0.05, retries=0,
                              transport=small, local="eth0", down=down) as stream:
            rows = list(stream)
        return rows, stream.stats.targets

    every, targets_all = swept(True)
    answered, targets = swept(False)
    assert len(every) == len({h.address for h in every}) == targets_all  # 32 addresses and the link-local hosts
    assert {h.address for h in answered} == {h.address for h in every if h.status != "down"}
    assert targets == targets_all


def test_a_stream_stopped_before_its_first_row_sends_nothing(link: Link, tmp_path) -> None:
    """stop() before the first next() (Ctrl-C between two shards of a --resume run, before the next shard's
    stream is iterated): the IPv4 part flushed a batch of probes, the IPv6 part and --local their first ones,
    before their first check of the stop. Now nothing is sent, no row comes, the counters say interrupted and
    nothing sent, and the pcap is closed whole (its header alone)."""
    import recon
    from recon.targets import build_targets

    transport = ReplayTransport(_link_and_rec(link))
    pcap = tmp_path / "stopped.pcap"
    stream = recon.sweep_iter(build_targets(["198.18.2.0/24", "2001:db8:1::/120"]), method="icmp", probe="echo",
                              timeout=0.05, retries=0, transport=transport, local="eth0", down=False, pcap=str(pcap))
    with stream:
        stream.stop()
        rows = list(stream)
    assert transport.sent == [] and rows == []
    assert stream.stats.interrupted and stream.stats.sent == 0
    assert list(read_frames(str(pcap))) == [] and pcap.stat().st_size == 24


def test_a_stream_closed_before_it_was_iterated_closes_its_pcap(link: Link, tmp_path) -> None:
    """A stream left without a row asked of it (its generator never started, so its finally never ran) still
    closes the pcap file it opened: no descriptor is left open on it."""
    import os

    import recon
    from recon.targets import build_targets

    pcap = tmp_path / "unread.pcap"
    stream = recon.sweep_iter(build_targets(["198.18.2.0/30"]), method="icmp", probe="echo", timeout=0.05, retries=0,
                              transport=ReplayTransport(_link_and_rec(link)), pcap=str(pcap))
    def open_on_pcap() -> int:
        return sum(1 for fd in os.listdir("/proc/self/fd") if os.path.realpath(f"/proc/self/fd/{fd}") == str(pcap))

    assert open_on_pcap() == 1
    stream.close()
    assert open_on_pcap() == 0 and pcap.stat().st_size == 24
