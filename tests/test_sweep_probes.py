"""TCP/UDP discovery probes in the lab, side by side with nmap: hosts that drop echo (198.18.6.0/24) or all
ICMP (198.18.7.0/24), the reason each host was found, what to try when nothing answered, and loss."""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.conftest import need_tool


def _rows(res: subprocess.CompletedProcess[str]) -> list[dict]:
    return [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]


def _up(rows: list[dict]) -> dict[str, str]:
    return {r["address"]: r["reason"] for r in rows if r["status"] == "up"}


def _nmap(lab, *args: str) -> set[str]:
    out = lab.run(["nmap", "-n", "-oG", "-", *args], timeout=120).stdout
    return set(re.findall(r"Host: (\S+) \(\)\s+Status: Up", out))


def test_default_probes_find_what_nmap_sn_finds(lab) -> None:
    """recon's default (echo, SYN 443, ACK 80, timestamp, as nmap -sn) finds the hosts that drop echo and
    those that drop all ICMP, the same set as nmap -sn; the reason names what answered."""
    need_tool("nmap")
    noecho, noicmp, sparse = (lab.info.range(n) for n in ("noecho24", "noicmp24", "sparse24"))
    res = lab.recon("sweep", noecho.cidr, noicmp.cidr, sparse.cidr, "--json")
    assert res.returncode == 0, res.stderr
    up = _up(_rows(res))
    assert set(up) == set(noecho.up) | set(noicmp.up) | set(sparse.up)
    assert set(up) == _nmap(lab, "-sn", noecho.cidr, noicmp.cidr, sparse.cidr)
    assert {up[a] for a in noicmp.up} <= {"syn-ack", "rst"}
    assert {up[a] for a in noicmp.up[:2]} == {"syn-ack"}, "two listen on tcp/443"
    assert {up[a] for a in noecho.up} <= {"rst", "timestamp-reply"}
    assert {up[a] for a in sparse.up} <= {"echo-reply", "rst", "timestamp-reply"}


def test_tcp_probes_match_nmap_ps443_pa80(lab) -> None:
    """-PS443 -PA80 (nmap's spelling) on the range that drops all ICMP: the same hosts as nmap, by TCP only."""
    need_tool("nmap")
    noicmp = lab.info.range("noicmp24")
    res = lab.recon("sweep", noicmp.cidr, "-PS443", "-PA80", "--json")
    assert res.returncode == 0, res.stderr
    up = _up(_rows(res))
    assert set(up) == set(noicmp.up) == _nmap(lab, "-sn", "-PS443", "-PA80", noicmp.cidr)
    assert all(r["reply"] in ("syn-ack/syn:443", "rst/syn:443", "rst/ack:80") for r in _rows(res))


def test_udp_probes_get_replies_or_port_unreachable_from_the_host(lab) -> None:
    """--probe udp:53: the echo-dropping hosts answer with port unreachable from themselves; of the hosts that
    drop all ICMP only the two with a udp/53 service answer (with a datagram)."""
    noecho, noicmp = lab.info.range("noecho24"), lab.info.range("noicmp24")
    res = lab.recon("sweep", noecho.cidr, noicmp.cidr, "--probe", "udp:53", "--json")
    up = _up(_rows(res))
    assert up == {**{a: "port-unreachable" for a in noecho.up}, **{a: "udp-reply" for a in noicmp.up[:2]}}


def test_echo_only_finds_nothing_there_and_says_what_to_try(lab) -> None:
    """--probe echo on hosts that drop ICMP: nothing, exit 1, and one line saying to try TCP probes."""
    res = lab.recon("sweep", lab.info.range("noicmp24").cidr, "--probe", "echo", "-W", "0.3")
    assert res.returncode == 1 and res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert lines[0].startswith("0 hosts up of 256") and len(lines) == 2
    assert "--probe syn:" in lines[1]


def test_adaptive_retries_find_a_dense_range_under_20_percent_loss(lab) -> None:
    """At 20 % loss the default options find at least 254 of 256 every time (retries adapt to the loss)."""
    with lab.impaired(loss=20):
        runs = [_up(_rows(lab.recon("sweep", "198.18.2.0/24", "--json"))) for _ in range(3)]
    assert [len(r) >= 254 for r in runs] == [True] * 3, [len(r) for r in runs]


def test_adaptive_retries_cost_one_retry_round_without_loss(lab) -> None:
    """Without loss a sparse range is re-probed once (the first retry finds nothing, so it stops)."""
    from recon.engine import sweep
    from recon.lab import netns
    from recon.targets import build_targets

    with netns(lab.ns):
        result = sweep(build_targets(["198.18.1.0/24"]), probe="echo", retries=None, timeout=0.3)
    assert len(result.up) == 16 and result.stats.retries == 240 and result.stats.sent == 256 + 240


def test_pcap_holds_tcp_probes_and_answers(lab, tmp_path) -> None:
    """With the default probes the pcap holds each SYN and ACK with the answers (RST from closed ports).

    Targets that answer echo get no later kind now that each batch of probes is drained as it goes, so the
    targets are two ICMP-silent hosts (they answer SYN with RST) and two silent addresses (all four kinds)."""
    need_tool("tshark")
    r = lab.info.range("noicmp24")
    listening = {s.address for s in r.services}
    live = [a for a in (r.up or ()) if a not in listening][:2]
    dead = [str(a) for a in ipaddress.ip_network(r.cidr).hosts() if str(a) not in (r.up or ())][:2]
    path = tmp_path / "tcp.pcap"
    res = lab.recon("sweep", *live, *dead, "--pcap", str(path), "-W", "0.3", "-r", "0", "--json")
    assert res.returncode == 0, res.stderr
    assert {json.loads(line)["address"]: json.loads(line)["reason"] for line in res.stdout.splitlines()} == dict.fromkeys(live, "rst")
    fields = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-e", "tcp.flags.str", "-e", "tcp.dstport",
                             "-e", "icmp.type", "-e", "ip.src"], capture_output=True, text=True)
    assert fields.returncode == 0, fields.stderr
    lines = [line.split("\t") for line in fields.stdout.splitlines()]
    flags = [(f.replace("\u00b7", "."), port, src) for f, port, _, src in lines if f]
    assert sum(1 for f, port, _ in flags if f.endswith("S.") and port == "443") == 4  # nobody answers echo
    assert 2 <= sum(1 for f, port, _ in flags if f.endswith("A....") and port == "80") <= 4  # the silent two at least
    rst = [src for f, _, src in flags if "R" in f]
    assert len(rst) >= 2 and set(rst) == set(live)
    types = [t for _, _, t, _ in lines]
    assert types.count("8") == 4 and 2 <= types.count("13") <= 4


def test_the_default_probe_set_needs_no_retry_round_without_loss(lab) -> None:
    """With nmap's set, the later kinds of the first round are its retry: when no host is first found by them
    (no loss, no filtering) there is no retry round, and who answered echo gets no further probe."""
    from recon.engine import sweep
    from recon.lab import netns
    from recon.targets import build_targets

    with netns(lab.ns):
        result = sweep(build_targets(["198.18.1.0/24"]), probe=None, retries=None, timeout=0.3)
    assert len(result.up) == 16 and {h.reason for h in result.up} == {"echo-reply"}
    assert result.stats.retries == 0 and result.stats.sent == 256 + 3 * 240


@contextmanager
def _two_sources(lab) -> Iterator[str]:
    """For the block, the lab gets a target set reachable only from a second source address: the scanner holds
    198.18.0.78 too and routes the ICMP-silent range (198.18.7.0/24) with 'src 198.18.0.78' (as a VPN or a
    policy route would), and the firewalled hosts accept that range's packets only from .78 and the echo-dropping
    range's (198.18.6.0/24) only from 198.18.0.2 (an ACL by source). The lab has no such set by itself:
    its scanner has one address."""
    second, fw = "198.18.0.78", lab.info.fw_ns
    noecho, noicmp = lab.info.range("noecho24").cidr, lab.info.range("noicmp24").cidr
    acl = ("table ip recontest {\n chain input { type filter hook input priority -10; policy accept;\n"
           f"  ip daddr {noicmp} ip saddr != {second} drop\n  ip daddr {noecho} ip saddr != {lab.info.scanner_ipv4} drop\n"
           " }\n}\n")
    steps = [(["ip", "addr", "add", f"{second}/24", "dev", "eth0"], lab.ns, ["ip", "addr", "del", f"{second}/24", "dev", "eth0"]),
             (["ip", "route", "add", noicmp, "via", lab.info.router_ipv4, "src", second], lab.ns,
              ["ip", "route", "del", noicmp, "via", lab.info.router_ipv4]),
             (["nft", "-f", "-"], fw, ["nft", "delete", "table", "ip", "recontest"])]
    done = []
    try:
        for argv, ns, undo in steps:
            res = lab.run(argv, ns=ns, input=acl if argv[0] == "nft" else None)
            assert res.returncode == 0, res.stderr
            done.append((undo, ns))
        yield second
    finally:
        for undo, ns in reversed(done):
            lab.run(undo, ns=ns)


def test_tcp_probes_leave_from_the_source_address_of_each_targets_route(lab) -> None:
    """The two halves of 198.18.6.0/23 are reachable only from different source addresses (by route). TCP
    probes alone (-PS443 -PA80, so no ICMP probe can find a host) find every live host of both halves, so
    each probe left from its route's source with a checksum for it (it was one source for the whole sweep,
    the first target's: one half was lost); nmap, which picks the source by route too, finds the same."""
    need_tool("nmap")
    noecho, noicmp = lab.info.range("noecho24"), lab.info.range("noicmp24")
    with _two_sources(lab):
        res = lab.recon("sweep", "198.18.6.0/23", "-PS443", "-PA80", "--json", "-W", "0.5")
        assert res.returncode == 0, res.stderr
        up = _up(_rows(res))
        assert set(up) == set(noecho.up) | set(noicmp.up)
        assert set(up) == _nmap(lab, "-sn", "-PS443", "-PA80", "198.18.6.0/23")
    assert set(up.values()) <= {"rst", "syn-ack"}


def test_send_threads_find_what_the_inline_send_finds(lab, monkeypatch) -> None:
    """A big sweep's routed probes go out on transport.SendPool's threads, through twin sockets. Forced on (two
    threads) and off, nmap's four probe kinds over a sparse /20, the echo-dropping /24 and the ICMP-silent /24
    find the same hosts for the same reasons with the same number of probes, and each RTT is measured from its
    own batch's send (well under the 0.5 s timeout, in a lab without delay)."""
    import recon.engine
    from recon.engine import sweep
    from recon.lab import netns
    from recon.targets import build_targets

    names = ("sparse4k", "noecho24", "noicmp24")
    truth: set[str] = set()
    for name in names:
        truth |= set(lab.info.range(name).up or ())
    results = {}
    with netns(lab.ns):
        targets = build_targets([lab.info.range(name).cidr for name in names])
        for threads in (0, 2):
            monkeypatch.setattr(recon.engine, "send_threads", lambda probes, threads=threads: threads)
            results[threads] = sweep(targets, probe=None, retries=None, timeout=0.5)
    inline, pooled = results[0], results[2]
    assert {h.address for h in pooled.up} == {h.address for h in inline.up} == truth
    assert {h.address: h.reason for h in pooled.up} == {h.address: h.reason for h in inline.up}
    assert pooled.stats.sent == inline.stats.sent and pooled.stats.send_errors == 0
    assert all(h.rtt_ms is not None and 0 < h.rtt_ms < 100 for h in pooled.up)


def test_a_send_twin_sends_as_its_socket_does_and_hears_nothing(lab) -> None:
    """transport.send_twin: echo requests sent through the twin of a sweep's raw ICMP socket are answered to
    that socket, which reads every reply; the twin reads none (an ICMP filter and a drop-all socket filter)."""
    import select
    import socket
    import struct

    import pytest

    from recon.lab import netns
    from recon.packets import inet_checksum
    from recon.transport import FAMILY4, SendBatch, SystemTransport, prepare_probe_socket

    with netns(lab.ns):
        transport = SystemTransport()
        main = prepare_probe_socket(transport.icmp(socket.AF_INET, what="test")[0], socket.AF_INET, interface=None, source=None)
        twin = transport.send_twin(main)
        try:
            batch = SendBatch(main, 16)
            for k in range(16):
                head = struct.pack("!BBHHH", 8, 0, 0, 0x7E57, k)
                packet = head[:2] + struct.pack("!H", inet_checksum(head)) + head[4:]
                struct.pack_into("!HHI8x", batch.area, k * batch.slot, FAMILY4, 0, 0xC6120201 + k)  # 198.18.2.1 + k
                batch.put(k, packet)
            assert batch.send(0, 16, twin.fileno()) == 16
            seqs: set[int] = set()
            while len(seqs) < 16 and select.select([main], [], [], 2)[0]:
                data = main.recv(2048)
                ihl = (data[0] & 15) * 4
                if data[ihl] == 0 and data[ihl + 4:ihl + 6] == b"\x7e\x57":
                    seqs.add(int.from_bytes(data[ihl + 6:ihl + 8], "big"))
            assert seqs == set(range(16))
            with pytest.raises(BlockingIOError):
                twin.recv(2048)
        finally:
            twin.close()
            main.close()


@pytest.mark.parametrize("cookie", [True, False])
def test_send_twins_only_for_a_probe_socket_of_this_threads_namespace(lab, monkeypatch, cookie: bool) -> None:
    """A sweep's sockets opened in the lab but iterated outside it: transport.twins says no (the pool would open
    its twins in the calling thread's namespace, and the probes would leave from there), so the probes go inline
    through the sockets opened in the lab. Told by the namespace cookie (Linux 5.14), and, where a kernel has
    none (an option number it does not know stands in for that here), by SIOCGSKNS. Nothing is sent."""
    import socket

    from recon import transport as transport_module
    from recon.lab import netns
    from recon.transport import ReplayTransport, SystemTransport

    if not cookie:
        monkeypatch.setattr(transport_module, "_SO_NETNS_COOKIE", 0x7FFF)  # ENOPROTOOPT, as before Linux 5.14

    transport = SystemTransport()
    with netns(lab.ns):
        inside, _ = transport.icmp(socket.AF_INET, what="test")
    try:
        with netns(lab.ns):
            assert transport.twins(inside)
        assert not transport.twins(inside)
        assert not ReplayTransport().twins(ReplayTransport().icmp(socket.AF_INET, what="test")[0])
    finally:
        inside.close()
