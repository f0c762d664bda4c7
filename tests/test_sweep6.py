"""The IPv6 sweep (recon/engine6.py): in-process on replayed answers (captures/ipv6.pcap: echo replies of
2001:db8::10 and 2001:db8:2::1, the router's hop-limit-exceeded for 2001:db8:2::5), and in the lab side by
side with nmap -6 (sparse6 2001:db8:1::/120, dense6 2001:db8:3::/120)."""

from __future__ import annotations

import errno
import ipaddress
import json
import re
import socket
import time
from typing import Any

import pytest

from recon.engine import Prober, sweep
from recon.errors import InputError, InvalidOption
from recon.pcap import read_frames
from recon.targets import build_targets
from recon.transport import Recording, ReplaySocket, ReplayTransport, Sent
from tests.conftest import CAPTURES, need_tool

REC = Recording.from_pcap(CAPTURES / "ipv6.pcap")
LOCAL6 = "2001:db8::2"  # ReplayTransport's IPv6 source, as the lab's scanner


def _tcp_answers(up: set[str]):
    """The recording for ICMPv6; a TCP probe to an address in ``up`` gets the RST a closed port sends
    (built with Scapy, which also checks the probe's checksum over the IPv6 pseudo-header)."""
    from scapy.layers.inet import TCP
    from scapy.layers.inet6 import IPv6

    checked: list[bool] = []

    def respond(sock: ReplaySocket, sent: Sent) -> list[bytes]:
        if sent.kind != "raw6":
            return REC(sock, sent)
        dst = sent.address[0]
        probe = TCP(sent.data)
        rebuilt = TCP(bytes(probe))
        rebuilt.chksum = None
        checked.append(bytes(IPv6(src=LOCAL6, dst=dst) / rebuilt)[40:][16:18] == sent.data[16:18])
        if dst not in up:
            return []
        seq, ack = (0, probe.seq + 1) if probe.flags.S else (probe.ack, 0)
        rst = IPv6(src=dst, dst=LOCAL6, hlim=61) / TCP(sport=probe.dport, dport=probe.sport, flags="RA" if probe.flags.S else "R",
                                                      seq=seq, ack=ack)
        return [bytes(rst)]

    return respond, checked


def test_echo_replies_and_errors_over_ipv6_come_from_the_recorded_answers() -> None:
    """Echo only: the two recorded repliers are up (echo-reply, their recorded hop limit), the router's
    time exceeded makes 2001:db8:2::5 unreachable with the router as reporter, the rest is down."""
    transport = ReplayTransport(REC)
    result = sweep(build_targets(["2001:db8::e-11", "2001:db8:2::1", "2001:db8:2::5"]), probe="echo", timeout=0.05,
                   retries=1, transport=transport)
    rows = {h.address: h for h in result.hosts}
    assert [h.address for h in result.up] == ["2001:db8::10", "2001:db8:2::1"]
    assert {h.reason for h in result.up} == {"echo-reply"}
    assert rows["2001:db8::10"].ttl == REC.replies["2001:db8::10"][0][7]
    assert (rows["2001:db8:2::5"].status, rows["2001:db8:2::5"].reason) == ("unreachable", "hop-limit-exceeded")
    assert rows["2001:db8:2::5"].reporter == socket.inet_ntop(socket.AF_INET6, REC.errors["2001:db8:2::5"][0][8:24])
    assert {a for a, h in rows.items() if h.status == "down"} == {"2001:db8::e", "2001:db8::f", "2001:db8::11"}
    s = result.stats
    assert (s.targets, s.sent, s.retries, s.received, s.unreachable) == (6, 6 + 3, 3, 3, 1)
    probes = [p for p in transport.sent if p.kind == "icmp6"]
    assert len(probes) == 9 and {p.data[0] for p in probes} == {128}
    assert len({p.data[4:8] for p in probes}) == 6, "id/seq carry the target's index: one pair per target"


def test_tcp_probes_over_ipv6_carry_cookies_and_correct_checksums() -> None:
    """-PS443 -PA80: the RST to a SYN (ack = cookie + 1) and to an ACK (seq = cookie) make a host up, with the
    reason; every probe's checksum is what Scapy computes over the IPv6 pseudo-header."""
    respond, checked = _tcp_answers({"2001:db8:3::7", "2001:db8:3::9"})
    transport = ReplayTransport(respond)
    result = sweep(build_targets(["2001:db8:3::1-10"]), probe=["syn:443", "ack:80"], timeout=0.05, retries=0,
                   transport=transport)
    up = {h.address: (h.reason, h.reply, h.ttl) for h in result.up}
    assert up == {"2001:db8:3::7": ("rst", "rst/syn:443", 61), "2001:db8:3::9": ("rst", "rst/syn:443", 61)}
    assert len(checked) == 16 + 14 and all(checked), "every SYN, then ACK only to the silent"


def test_a_forged_rst_without_the_cookie_is_ignored() -> None:
    """An RST whose acknowledgment is not our cookie + 1 (a blind forgery) makes nothing up."""
    from scapy.layers.inet import TCP
    from scapy.layers.inet6 import IPv6

    def forge(sock: ReplaySocket, sent: Sent) -> list[bytes]:
        probe = TCP(sent.data) if sent.kind == "raw6" else None
        if probe is None:
            return []
        return [bytes(IPv6(src=sent.address[0], dst=LOCAL6) / TCP(sport=probe.dport, dport=probe.sport, flags="RA",
                                                                 ack=(probe.seq + 2) & 0xFFFFFFFF))]

    result = sweep(build_targets(["2001:db8:3::1-4"]), probe="syn:443", timeout=0.05, retries=0,
                   transport=ReplayTransport(forge))
    assert not result.up and result.stats.ignored == 4


def test_a_multicast_group_is_one_probe_and_each_member_is_a_host() -> None:
    """ff02::1%lo: one echo to the group; each member's reply (any source, our id/seq) is a row of its own,
    scoped to the interface; the group itself is not a host."""
    from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6

    members = ["fe80::1", "fe80::2"]

    def group(sock: ReplaySocket, sent: Sent) -> list[bytes]:
        req = ICMPv6EchoRequest(sent.data)
        return [bytes(IPv6(src=m, dst="fe80::99", hlim=64) / ICMPv6EchoReply(id=req.id, seq=req.seq, data=req.data))
                for m in members] if sent.address[0] == "ff02::1" else []

    transport = ReplayTransport(group)
    result = sweep(build_targets(["ff02::1%lo"]), timeout=0.05, transport=transport)
    assert [(h.address, h.status, h.reason) for h in result.hosts] == [
        ("fe80::1%lo", "up", "echo-reply"), ("fe80::2%lo", "up", "echo-reply")]
    assert [p.address[3] for p in transport.sent] == [socket.if_nametoindex("lo")]


def test_timestamp_only_cannot_probe_ipv6_but_the_default_set_drops_it() -> None:
    """ICMPv6 has no timestamp: asked for alone it is bad input naming --probe; in the default set it is left out."""
    with pytest.raises(InvalidOption, match="ICMPv6 has no timestamp"):
        sweep(build_targets(["2001:db8::10"]), probe="timestamp", transport=ReplayTransport(REC))
    transport = ReplayTransport(REC)
    sweep(build_targets(["2001:db8::11"]), probe=None, timeout=0.05, retries=0, transport=transport)
    sent = [(p.kind, int.from_bytes(p.data[2:4], "big") if p.kind == "raw6" else p.data[0]) for p in transport.sent]
    assert sent == [("icmp6", 128), ("raw6", 443), ("raw6", 80)], "nmap -6 -sn's: echo, SYN 443, ACK 80"


def test_mixed_targets_are_merged_into_one_result() -> None:
    """IPv4 and IPv6 targets in one sweep: one SweepResult, counters added up; a source of the wrong family is refused."""
    from tests.test_sweep_replay import REC as REC4

    def both(sock: ReplaySocket, sent: Sent) -> list[bytes]:
        return REC(sock, sent) if sent.kind.endswith("6") else REC4(sock, sent)

    result = sweep(build_targets(["198.18.1.17", "2001:db8::10", "2001:db8::11"]), method="icmp", probe="echo",
                   timeout=0.05, retries=0, transport=ReplayTransport(both))
    assert [(h.address, h.status) for h in result.hosts] == [
        ("198.18.1.17", "up"), ("2001:db8::10", "up"), ("2001:db8::11", "down")]
    assert (result.stats.targets, result.stats.received) == (3, 2)
    with pytest.raises(InvalidOption, match="an IPv6 source cannot reach the IPv4 targets"):
        sweep(build_targets(["198.18.1.17", "2001:db8::10"]), source="2001:db8::2", transport=ReplayTransport(both))


def test_an_ipv6_sweep_has_a_size_limit_even_with_yes() -> None:
    """A /96 parses with --yes, but one sweep takes at most a /104 of IPv6 (a shard of it is fine); nothing is sent."""
    transport = ReplayTransport(REC)
    with Prober(transport=transport) as prober, pytest.raises(InputError, match="at most 16,777,216") as refused:
        prober.sweep(build_targets(["2001:db8::/96"], yes=True))
    assert transport.sent == []
    # the advice names what works: --shard, and --cluster or --resume, which cut a /96 into parts of a /104
    assert "--shard I/N" in refused.value.hint and "--cluster or --resume" in refused.value.hint


# --- in the lab, beside nmap -6 -------------------------------------------------------------


def _up(res) -> dict[str, str]:
    return {r["address"]: r["reason"] for r in map(json.loads, res.stdout.splitlines()) if r["status"] == "up"}


def _nmap6(lab, *args: str) -> set[str]:
    out = lab.run(["nmap", "-6", "-n", "-oG", "-", *args], timeout=120).stdout
    return set(re.findall(r"Host: (\S+) \(\)\s+Status: Up", out))


def test_ipv6_sweep_finds_what_nmap_6_sn_finds(lab) -> None:
    """The default probes on the routed IPv6 ranges: the same hosts as nmap -6 -sn, found by echo."""
    need_tool("nmap")
    sparse, dense = lab.info.range("sparse6"), lab.info.range("dense6")
    res = lab.recon("sweep", sparse.cidr, dense.cidr, "--json")
    assert res.returncode == 0, res.stderr
    up = _up(res)
    assert set(up) == set(sparse.up) | {f"2001:db8:3::{i:x}" if i else "2001:db8:3::" for i in range(256)}
    assert set(up) == _nmap6(lab, "-sn", sparse.cidr, dense.cidr)
    assert set(up.values()) == {"echo-reply"}


def test_ipv6_tcp_probes_match_nmap_6_ps443_pa80(lab) -> None:
    """-PS443 -PA80 on sparse6 (closed ports: the kernels send RST): nmap's hosts, each by rst."""
    need_tool("nmap")
    sparse = lab.info.range("sparse6")
    res = lab.recon("sweep", sparse.cidr, "-PS443", "-PA80", "--json")
    up = _up(res)
    assert set(up) == set(sparse.up) == _nmap6(lab, "-sn", "-PS443", "-PA80", sparse.cidr)
    assert set(up.values()) == {"rst"}


def test_ipv6_udp_probe_port_unreachable_from_the_host_or_a_router(lab) -> None:
    """--probe udp:53: sparse6's hosts send port unreachable themselves (up); dense6's AnyIP addresses get it from
    the far router's address (so they are unreachable, reporter 2001:db8:4::2)."""
    sparse, dense = lab.info.range("sparse6"), lab.info.range("dense6")
    res = lab.recon("sweep", sparse.cidr, "2001:db8:3::1-4", "--probe", "udp:53", "--json", "--all")
    rows = {r["address"]: r for r in map(json.loads, res.stdout.splitlines())}
    assert {a for a, r in rows.items() if r["status"] == "up"} == set(sparse.up)
    assert {rows[a]["reason"] for a in sparse.up} == {"port-unreachable"}
    assert {(r["status"], r["reporter"]) for a, r in rows.items() if a.startswith("2001:db8:3::")} == {
        ("unreachable", "2001:db8:4::2")}
    assert dense.cidr == "2001:db8:3::/120"


def test_cli_sweeps_ipv6_only_targets(lab) -> None:
    """IPv6-only targets used to be refused (the engine could not probe them); now they are swept: a range, an
    AAAA-only name, a scoped link-local address and a group on the scanner's link; no traceback, exit 0."""
    res = lab.recon("sweep", "2001:db8:1::/120", "far6.lab", f"{lab.info.router_ipv6_ll}%eth0", "fe80::99%eth0", "--all")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    rows = {line.split()[0]: line.split()[1] for line in res.stdout.splitlines()[2:]}
    assert rows[f"{lab.info.router_ipv6_ll}%eth0"] == "up" and rows["fe80::99%eth0"] == "down"
    assert rows["2001:db8:2::1"] == "up"
    assert res.stderr.startswith(f"{len(lab.info.range('sparse6').up) + 2} hosts up of 259 scanned")
    group = lab.recon("sweep", "ff02::1%eth0", "--json")
    members = {a for a in _up(group) if a.startswith("fe80:")}
    assert f"{lab.info.router_ipv6_ll}%eth0" in members and f"{lab.info.scanner_ipv6_ll}%eth0" in members
    assert len(members) == 7, "the five LAN hosts, the router and the scanner itself (lan6ll)"


def test_onlink_ipv6_targets_go_by_neighbor_discovery_as_nmap_6_sn(lab) -> None:
    """Targets on the scanner's link (lan6, read from the IPv6 routing table) are asked by Neighbor Discovery
    (recon/ndp.py), as nmap -6 -sn does: the same hosts, each with its MAC; with --method icmp, echo instead."""
    need_tool("nmap")
    res = lab.recon("sweep", "2001:db8::/120", "2001:db8:1::/120", "--json")
    rows = {r["address"]: r for r in map(json.loads, res.stdout.splitlines()) if r["status"] == "up"}
    onlink = {a for a in rows if a.startswith("2001:db8::")}
    assert onlink == _nmap6(lab, "-sn", "2001:db8::/120")
    assert {rows[a]["reason"] for a in onlink} == {"nd-advert", "self"}
    macs = {h.ipv6: h.mac for h in lab.info.hosts}
    assert all(rows[a]["mac"] == mac for a, mac in macs.items())
    assert {rows[a]["reason"] for a in rows if a.startswith("2001:db8:1::")} == {"echo-reply"}, "routed: echo"
    icmp = _up(lab.recon("sweep", "2001:db8::/120", "--method", "icmp", "--json"))
    assert set(icmp.values()) == {"echo-reply"} and set(macs) <= set(icmp)


def test_pcap_holds_the_ipv6_probes_and_answers_with_valid_checksums(tmp_path) -> None:
    """--pcap of an IPv6 sweep: raw IP records, each probe and answer with an IPv6 header Scapy accepts."""
    from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6
    from scapy.utils import rdpcap

    path = tmp_path / "v6.pcap"
    with Prober(probe="echo", transport=ReplayTransport(REC)) as prober:
        prober.sweep(build_targets(["2001:db8::10", "2001:db8::11"]), timeout=0.05, retries=0, pcap=str(path))
    packets = [p for p in rdpcap(str(path))]
    assert [p[IPv6].dst for p in packets if p.haslayer(ICMPv6EchoRequest)] == ["2001:db8::10", "2001:db8::11"]
    assert [p[IPv6].src for p in packets if p.haslayer(ICMPv6EchoReply)] == ["2001:db8::10"]
    for p in packets:
        recorded = bytes(p[IPv6])
        p[IPv6].payload.cksum = None
        assert bytes(IPv6(bytes(p[IPv6]))) == recorded, "the checksum Scapy computes is the one recorded"


def test_ipv6_targets_from_a_file_and_by_name(lab, tmp_path) -> None:
    """-iL with IPv6 lines, comments and an AAAA-only name: each target swept once, the name kept in the row."""
    listing = tmp_path / "targets6.txt"
    listing.write_text("# routed IPv6\n2001:db8:1::2f\n2001:db8:1::2f-30\nfar6.lab\n")
    res = lab.recon("sweep", "-iL", str(listing), "--probe", "echo", "--json", "--all")
    assert res.returncode == 0, res.stderr
    rows = {r["address"]: r for r in map(json.loads, res.stdout.splitlines())}
    assert {a: r["status"] for a, r in rows.items()} == {"2001:db8:1::2f": "up", "2001:db8:1::30": "down",
                                                         "2001:db8:2::1": "up"}
    assert rows["2001:db8:2::1"]["hostname"] == "far6.lab"


def test_an_interface_without_ipv4_is_fine_for_ipv6_targets(lab) -> None:
    """-I lo (no IPv4 segment there): an IPv6 sweep runs (nothing is reachable through lo: exit 1, no error);
    an IPv4 sweep is still refused in one line, since ARP and the IPv4 probes need an IPv4 address there."""
    v6 = lab.recon("sweep", "2001:db8:1::/124", "-I", "lo", "-W", "0.2")
    assert v6.returncode == 1 and "error" not in v6.stderr and "Traceback" not in v6.stderr, v6.stderr
    v4 = lab.recon("sweep", "198.18.1.0/28", "-I", "lo")
    assert v4.returncode == 2 and v4.stderr.startswith("recon: error: invalid --interface 'lo'"), v4.stderr


def test_adaptive_retries_recover_ipv6_answers_lost_at_30_percent() -> None:
    """retries=None (the CLI default) over IPv6: with 30 % of answers lost, the silent are probed again while
    a retry still finds hosts, so every live host of a dense /120 is found; loss-free, one retry round only."""
    from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6

    def everyone(sock: ReplaySocket, sent: Sent) -> list[bytes]:
        req = ICMPv6EchoRequest(sent.data)
        return [bytes(IPv6(src=sent.address[0], dst=LOCAL6, hlim=63) / ICMPv6EchoReply(id=req.id, seq=req.seq, data=req.data))]

    lossy = sweep(build_targets(["2001:db8:3::/120"]), probe="echo", timeout=0.05, retries=None,
                  transport=ReplayTransport(everyone, loss=0.3, seed=7))
    assert len(lossy.up) == 256 and lossy.stats.retries > 0
    clean = sweep(build_targets(["2001:db8:3::/120", "2001:db8:9::/120"]), probe="echo", timeout=0.05, retries=None,
                  transport=ReplayTransport(lambda s, p: everyone(s, p) if p.address[0].startswith("2001:db8:3:") else []))
    assert len(clean.up) == 256 and clean.stats.retries == 256, "one retry round, to the silent /120 only"


def test_tcp_answers_find_their_target_in_a_seeded_shard() -> None:
    """With --seed and --shard the targets go out permuted; a TCP answer carries no index, and still lands on its
    target (V6Targets.position undoes the permutation); targets of other shards are not probed."""
    up = {f"2001:db8:3::{i:x}" for i in range(1, 0x40, 3)}
    respond, checked = _tcp_answers(up)
    transport = ReplayTransport(respond)
    with Prober(probe="syn:443", transport=transport) as prober:
        result = prober.sweep(build_targets(["2001:db8:3::/122"]), timeout=0.05, retries=0, seed=9, shard=(2, 3))
    probed = {p.address[0] for p in transport.sent}
    assert len(probed) == 21 and {h.address for h in result.hosts} == probed
    assert {h.address for h in result.up} == up & probed and all(checked)


def test_ipv6_probes_go_out_256_to_a_sendmmsg_call() -> None:
    """The IPv6 send path batches as the IPv4 one does (transport.SendBatch over sockaddr_in6): 600 echoes take
    three calls, not 600 sendto(2)s; every target still gets its own probe (id/seq) and address."""
    transport = ReplayTransport(REC)
    result = sweep(build_targets(["2001:db8:5::/120", "2001:db8:6::/120", "2001:db8:7::0-57"]), probe="echo", timeout=0,
                   retries=0, transport=transport)
    assert result.stats.sent == 600 == len(transport.sent)
    assert transport.send_calls == 3
    assert len({p.address for p in transport.sent}) == 600 and len({p.data[4:8] for p in transport.sent}) == 600


def test_an_ipv6_probe_the_kernel_refuses_counts_as_sent_and_failed() -> None:
    """The one send policy: EHOSTUNREACH for one destination is that probe's failure, counted in sent (as the IPv4
    engine counts it; before, the IPv6 part left it out of sent) and in send_errors; the others are found."""
    transport = ReplayTransport(REC, refuse=lambda sock, data, address: errno.EHOSTUNREACH if address[0] == "2001:db8::f" else 0)
    result = sweep(build_targets(["2001:db8::e-11"]), probe="echo", timeout=0.05, retries=0, transport=transport)
    assert [h.address for h in result.up] == ["2001:db8::10"]
    assert (result.stats.sent, result.stats.send_errors) == (4, 1)


def test_a_mixed_sweep_runs_its_ipv6_part_beside_the_ipv4_one(lab, tmp_path) -> None:
    """IPv4 and IPv6 targets in one sweep: the IPv6 probes go out while the IPv4 part still runs (the pcap, in the
    order its records were written, has IPv4 probes after the first IPv6 one; when the parts ran one after the
    other, every IPv6 record followed the IPv4 part's last wait), and the hosts found are those of the two apart."""
    pcap = tmp_path / "mixed.pcap"
    v4, v6 = lab.info.range("sparse24"), lab.info.range("sparse6")
    res = lab.recon("sweep", v4.cidr, v6.cidr, "--probe", "echo", "--json", "-w", str(pcap))
    assert res.returncode == 0, res.stderr
    found = {json.loads(line)["address"] for line in res.stdout.splitlines()}
    assert found == set(v4.up) | {str(ipaddress.ip_address(a)) for a in v6.up}
    scanner = {socket.inet_aton(lab.info.scanner_ipv4), socket.inet_pton(socket.AF_INET6, lab.info.scanner_ipv6)}
    order = [f.data[0] >> 4 for f in read_frames(str(pcap))
             if (f.data[12:16] if f.data[0] >> 4 == 4 else f.data[8:24]) in scanner]  # our probes, as written
    first6 = order.index(6)
    assert 4 in order[first6:], "no IPv4 probe went out after the first IPv6 one: the parts ran one after the other"
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [":" in r["address"] for r in rows] == sorted(":" in r["address"] for r in rows), "IPv6 rows still follow IPv4's"


def test_an_answer_to_an_earlier_rounds_echo_is_slow_not_a_sign_of_loss() -> None:
    """Adaptive retries as engine.py runs them (rounds.Rounds): 2001:db8::10's answer to the first echo arrives only
    while the retry round goes out. It is up (no RTT: which probe it answered is the first's), and the find does
    not count as loss, so no further round follows (before, the IPv6 part counted it and sent another round)."""
    held: list[tuple[ReplaySocket, bytes]] = []

    def slow(sock: ReplaySocket, sent: Sent) -> list[bytes]:
        if sent.kind != "icmp6" or len(sent.data) < 9:
            return []
        if sent.data[8] == 0:  # the first round's echo: answered, but late
            held.extend((sock, reply) for reply in REC(sock, sent))
            return []
        while held:
            s, reply = held.pop()
            s.deliver(reply)
        return []

    result = sweep(build_targets(["2001:db8::e-11"]), probe="echo", timeout=0.05, retries=None, transport=ReplayTransport(slow))
    (up,) = result.up
    assert (up.address, up.rtt_ms) == ("2001:db8::10", None)
    assert result.stats.retries <= 4, "one retry round (the slow answer is no sign of loss), not another for the silent"
    assert result.stats.sent == 4 + result.stats.retries


def test_ipv6_rtts_are_the_kernel_receive_time_less_the_send_time() -> None:
    """An echo reply the kernel stamped 40 ms after the probe left reads 40 ms though Python reads it at once: the
    IPv6 part's RTTs are SO_TIMESTAMPNS less the send time, so a busy interpreter (the IPv4 part runs beside it, on
    another thread) does not inflate them (before, an RTT was when Python got to the reply)."""
    def stamped(sock: ReplaySocket, sent: Sent) -> list[bytes]:
        for reply in REC(sock, sent):
            sock.deliver(reply, stamp_ns=time.time_ns() + 40_000_000)
        return []

    result = sweep(build_targets(["2001:db8::10", "2001:db8:2::1"]), probe="echo", timeout=0.05, retries=0,
                   transport=ReplayTransport(stamped))
    assert len(result.up) == 2 and all(40.0 <= h.rtt_ms < 80.0 for h in result.up), [h.rtt_ms for h in result.up]


def test_ipv6_hosts_stream_as_they_answer_and_the_rest_when_the_wait_ends() -> None:
    """sweep_iter over routed IPv6 targets (2001:db8::e is silent and keeps the part waiting its 5 s): each host
    that answers comes as soon as its reply is matched, before any down row (the IPv6 part's rows came as one
    batch when its wait ended); stopped once both are in, the wait ends at once and the silent target's row
    follows; an address once, and the rows as sweep() has them."""
    import recon

    up = {"2001:db8::10", "2001:db8:2::1"}
    rows: list[tuple[str, str]] = []
    seen_before_stop: list[tuple[str, str]] = []
    with recon.sweep_iter(build_targets(["2001:db8::10", "2001:db8:2::1", "2001:db8::e"]), probe="echo", timeout=5,
                          retries=0, transport=ReplayTransport(REC)) as stream:
        for batch in stream.batches():
            rows += [(h.address, h.status) for h in batch]
            if not seen_before_stop and {a for a, _ in rows} >= up:
                seen_before_stop = list(rows)
                stream.stop()
    assert sorted(seen_before_stop) == sorted((a, "up") for a in up), "the hosts that are up came before the wait ended"
    assert rows[len(seen_before_stop):] == [("2001:db8::e", "down")]
    assert len({a for a, _ in rows}) == len(rows) == 3
    assert stream.stats.interrupted and stream.stats.targets == 3


def test_without_down_a_silent_routed_target_has_no_row() -> None:
    """sweep_iter(down=False), as a sweep without --all and each --cluster shard ask: the IPv6 part's hosts up and
    unreachable come, a silent routed target gets no row (the walk lists those, as the IPv4 part has it; before,
    each came and cluster.sweep_shard dropped them itself), a silent scoped one still does (no walk holds it),
    and the counters are down=True's."""
    import recon

    targets = build_targets(["2001:db8::e-11", "2001:db8:2::1", "2001:db8:2::5", "fe80::dead:1%lo"])
    runs = {}
    for down in (True, False):
        with recon.sweep_iter(targets, probe="echo", timeout=0.05, retries=0, transport=ReplayTransport(REC), down=down) as stream:
            runs[down] = (sorted((h.address, h.status) for h in stream), stream.stats.targets)
    assert runs[False][0] == [r for r in runs[True][0] if r[1] != "down" or "%" in r[0]]
    assert runs[False][0] == [("2001:db8:2::1", "up"), ("2001:db8:2::5", "unreachable"), ("2001:db8::10", "up"),
                              ("fe80::dead:1%lo", "down")]
    assert runs[False][1] == runs[True][1] == 7


def test_without_down_on_link_targets_count_but_the_silent_have_no_row(lab) -> None:
    """The same in the lab, with on-link targets (lan6, by Neighbor Discovery), routed ones (sparse6) and a silent
    scoped address: without down no unscoped down row, the hosts up as with down, and the same target count."""
    import sys

    code = ("import json, recon\n"
            "from recon.targets import build_targets\n"
            "t = build_targets(['2001:db8::1-1f', '2001:db8:1::/124', 'fe80::dead:1%eth0'])\n"
            "for down in (True, False):\n"
            "    with recon.sweep_iter(t, probe='echo', timeout=0.5, retries=1, down=down) as s:\n"
            "        rows = [(h.address, h.status) for h in s]\n"
            "    print(json.dumps([rows, s.stats.targets, s.stats.method]))\n")
    res = lab.run([sys.executable, "-c", code], timeout=60)
    assert res.returncode == 0, res.stderr
    (every, targets, method), (answered, targets_without, method_without) = map(json.loads, res.stdout.splitlines())
    assert method == method_without == "ndp+icmp" and targets == targets_without == 31 + 16 + 1
    assert len(every) == targets and {a for a, s in every if s == "up"} == {a for a, s in answered if s == "up"}
    assert [r for r in answered if r[1] == "down"] == [["fe80::dead:1%eth0", "down"]]
    assert {a for a, s in answered if s == "up"} >= {h.ipv6 for h in lab.info.hosts}


def test_the_ipv6_part_builds_each_hosts_row_once() -> None:
    """The row ``found`` gets as a host answers is the row the IPv6 part's result holds (before, the result built every
    row again at the end), for a target and for a multicast group's members."""
    from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6

    from recon.engine6 import Prober6
    from recon.probes import parse_probes

    def answers(sock: ReplaySocket, sent: Sent) -> list[bytes]:
        if sent.address[0] != "ff02::1":
            return REC(sock, sent)
        req = ICMPv6EchoRequest(sent.data)
        return [bytes(IPv6(src=m, dst="fe80::99") / ICMPv6EchoReply(id=req.id, seq=req.seq, data=req.data))
                for m in ("fe80::1", "fe80::2")]

    targets = build_targets(["2001:db8::10", "2001:db8:2::1", "2001:db8::e", "ff02::1%lo"])
    got: list[Any] = []
    prober = Prober6(parse_probes("echo"), interface=None, source=None, rate=None, transport=ReplayTransport(answers),
                     sport=45000)
    try:
        hosts, _ = prober.sweep(targets.v6, targets.scoped, seed=None, shard=(1, 1), timeout=0.05, retries=0, found=got.append)
    finally:
        prober.close()
    held = {h.address: h for h in hosts}
    assert sorted(h.address for h in got) == ["2001:db8:2::1", "2001:db8::10", "fe80::1%lo", "fe80::2%lo"]
    assert all(held[h.address] is h for h in got) and held["2001:db8::e"].status == "down"


def _interrupt_at_first_line(lab, args: list[str]) -> tuple[Any, float, str, str, str]:
    """``recon sweep ARGS`` in the scanner namespace, SIGINT as soon as its first stdout line (the readiness signal:
    a host printed); (the process, seconds to that line, the line, the rest of stdout, stderr). The rest is read
    through the reader readline() used: communicate() reads the pipe itself and loses what readline() buffered."""
    import signal
    import subprocess
    import sys

    t0 = time.monotonic()
    proc = lab.popen([sys.executable, "-m", "recon", "sweep", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = proc.stdout.readline()
        at_first = time.monotonic() - t0
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)  # the output is small: the pipes hold it
        out, err = proc.stdout.read(), proc.stderr.read()
    finally:
        proc.kill()
    return proc, at_first, first, out, err


def test_cli_prints_each_ipv6_host_as_it_answers_and_ctrl_c_ends_the_wait(lab) -> None:
    """recon sweep on a routed IPv6 range with -W 20 -r 0 --json: the first host is printed as soon as it answers
    while the silent keep the sweep waiting (it was printed when the 20 s wait ended), so SIGINT then ends the
    sweep (exit 130) with whole JSON lines, each host once, every one up and of the range's truth."""
    sparse = lab.info.range("sparse6")
    proc, at_first, first, out, err = _interrupt_at_first_line(lab, [sparse.cidr, "-W", "20", "-r", "0", "--probe", "echo",
                                                                     "--json"])
    assert at_first < 20 / 2, (at_first, err)  # half the wait: printed as it answered, not when the wait ended
    assert proc.returncode == 130, err
    lines = (first + out).splitlines(keepends=True)
    rows = [json.loads(line) for line in lines]
    assert rows and all(line.endswith("\n") for line in lines)
    assert all(r["status"] == "up" for r in rows) and len({r["address"] for r in rows}) == len(rows)
    assert {r["address"] for r in rows} <= {str(ipaddress.ip_address(a)) for a in sparse.up}
    assert "sweep interrupted" in err, err


def test_a_mixed_sweeps_ipv4_rtts_are_the_kernel_receive_time_too() -> None:
    """In a mixed sweep the IPv4 part shares the interpreter with the IPv6 part's thread (up to 5 ms a switch), so
    its RTTs are SO_TIMESTAMPNS less the send time as well: a reply the kernel stamped 40 ms after the probe left
    reads 40 ms though Python reads it at once (before, an RTT was when Python got to the reply: 8 ms here)."""
    rec4 = Recording.from_pcap(CAPTURES / "sweep.pcap")

    def stamped(sock: ReplaySocket, sent: Sent) -> list[bytes]:
        for reply in (REC if sent.kind == "icmp6" else rec4)(sock, sent):
            sock.deliver(reply, stamp_ns=time.time_ns() + 40_000_000)
        return []

    result = sweep(build_targets(["198.18.1.17", "198.18.1.31", "2001:db8::10"]), probe="echo", timeout=0.05,
                   retries=0, transport=ReplayTransport(stamped))
    rtts = {h.address: h.rtt_ms for h in result.up}
    assert set(rtts) == {"198.18.1.17", "198.18.1.31", "2001:db8::10"}
    assert all(rtt is not None and 40.0 <= rtt < 80.0 for rtt in rtts.values()), rtts


def test_cli_resolve_prints_a_named_ipv6_host_while_the_sweep_still_waits(lab) -> None:
    """-R --json on far6.lab (2001:db8:2::1, named in the scanner's hosts file) and a silent routed address with
    -W 20 -r 0: far6.lab is printed with its name as soon as the name is known, while the silent one keeps the
    sweep waiting (the stream waited for the IPv6 part's next host or its end before it looked for names);
    SIGINT then ends it (exit 130)."""
    sparse = lab.info.range("sparse6")
    up = {int(ipaddress.ip_address(a)) for a in sparse.up}
    silent = next(str(a) for a in ipaddress.ip_network(sparse.cidr).hosts() if int(a) not in up)
    proc, at_first, first, out, err = _interrupt_at_first_line(lab, [lab.info.far_ipv6, silent, "-W", "20", "-r", "0", "-R",
                                                                     "--probe", "echo", "--json"])
    assert at_first < 20 / 2, (at_first, err)  # half the wait: named and printed, not held to the wait's end
    row = json.loads(first)
    assert (row["address"], row["status"], row["hostname"]) == (lab.info.far_ipv6, "up", "far6.lab")
    assert proc.returncode == 130 and not out.strip(), (out, err)
