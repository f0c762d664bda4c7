"""On-link IPv6 discovery (recon/ndp.py): Neighbor Discovery and multicast echo on the lab's LAN,
compared with nmap -6 -sn and ping -6 ff02::1 on the same link."""

from __future__ import annotations

import ipaddress
import json
import re
import signal
import subprocess
import sys

import pytest

from recon import ndp
from recon.errors import InvalidOption, InvalidTarget
from recon.labbuild import netns
from tests.conftest import need_tool


def _up(result) -> dict[str, str]:
    """address → MAC of the hosts that answered (our own addresses left out)."""
    return {h.address: h.mac for h in result.hosts if h.status == "up" and h.reason != ndp.LOCAL_REASON}


def test_solicit_finds_what_nmap_finds(lab) -> None:
    """NS to 2001:db8::/123 finds exactly the hosts nmap -6 -sn finds by nd-response, with the same MACs
    (the router's subnet-router anycast 2001:db8:: too), vendors from the manuf database, and the rest down."""
    need_tool("nmap")
    info = lab.info
    out = lab.run(["nmap", "-6", "-n", "-sn", "--reason", "2001:db8::/123"], timeout=60).stdout
    nmap = dict(re.findall(r"Nmap scan report for (\S+)\nHost is up, received nd-response.*\nMAC Address: (\S+)", out))
    assert len(nmap) == len(info.hosts) + 2, out  # the five hosts, the router and its anycast address
    with netns(lab.ns):
        result = ndp.solicit(info.scanner_if, [f"2001:db8::{i:x}" for i in range(32)], timeout=1.5)
    assert _up(result) == {a: m.lower() for a, m in nmap.items()}
    rows = {h.address: h for h in result.hosts}
    assert len(rows) == 32 and rows["2001:db8::1f"].status == "down" and rows["2001:db8::1f"].mac is None
    assert rows[info.scanner_ipv6].reason == "self" and rows[info.scanner_ipv6].mac == info.scanner_mac
    for h in info.hosts:
        row = rows[h.ipv6]
        assert (row.reason, row.reply, row.mac) == ("nd-advert", "nd-advert", h.mac)
        assert row.vendor and row.vendor.startswith(h.vendor.split()[0]), (row.vendor, h.vendor)
        assert row.rtt_ms is not None and 0 < row.rtt_ms < 1000
    assert result.stats.method == "ndp" and result.stats.targets == 32
    # one retry of the silent; the anycast address answers after a random delay of up to 1 s (RFC 4861 7.2.7),
    # so it may still be silent when the retry goes out
    assert result.stats.received >= len(nmap) and 32 - len(nmap) - 1 <= result.stats.retries <= 32 - len(nmap)


def test_solicit_link_local_targets(lab) -> None:
    """The LAN hosts' fe80:: addresses (asked from our link-local address) answer with their MACs; rows carry
    the scope, as ping prints them; an unused fe80:: address is down."""
    info = lab.info
    iface = info.scanner_if
    targets = [h.ipv6_ll for h in info.hosts] + [info.router_ipv6_ll, "fe80::dead:beef"]
    with netns(lab.ns):
        result = ndp.solicit(iface, targets, timeout=0.5, retries=0)
    expected = {f"{h.ipv6_ll}%{iface}": h.mac for h in info.hosts} | {f"{info.router_ipv6_ll}%{iface}": info.router_mac}
    assert _up(result) == expected
    assert [h.status for h in result.hosts if h.address == f"fe80::dead:beef%{iface}"] == ["down"]
    assert result.stats.sent == len(targets) and result.stats.retries == 0


def test_solicit_sends_what_rfc4861_asks(lab) -> None:
    """Each NS goes to the target's solicited-node group and its 33:33:ff MAC, hop limit 255, from the
    address of the target's scope, with our link-layer address option (the frames the tap saw)."""
    info = lab.info
    seen: list[bytes] = []
    target = info.hosts[0]
    with netns(lab.ns):
        ndp.solicit(info.scanner_if, [target.ipv6, target.ipv6_ll], timeout=0.3, retries=0, tap=seen.append)
    from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, IPv6
    from scapy.layers.l2 import Ether

    mine = bytes.fromhex(info.scanner_mac.replace(":", ""))
    sent = [Ether(f) for f in seen if f[6:12] == mine]
    assert len(sent) == 2
    for frame, src, tgt in zip(sent, (info.scanner_ipv6, info.scanner_ipv6_ll), (target.ipv6, target.ipv6_ll), strict=True):
        group = ipaddress.IPv6Address(int(ipaddress.IPv6Address("ff02::1:ff00:0")) | int(ipaddress.IPv6Address(tgt)) & 0xFFFFFF)
        assert frame[ICMPv6ND_NS].tgt == tgt and frame[IPv6].src == src and frame[IPv6].hlim == 255
        assert frame[IPv6].dst == str(group) and frame.dst == "33:33:" + group.packed[12:].hex(":")
        assert frame[ICMPv6NDOptSrcLLAddr].lladdr == info.scanner_mac
        redone = Ether(bytes(frame))
        redone[ICMPv6ND_NS].cksum = None  # Scapy computes it again
        assert Ether(bytes(redone))[ICMPv6ND_NS].cksum == frame[ICMPv6ND_NS].cksum
    answers = [Ether(f) for f in seen if f[6:12] != mine]
    assert {a[ICMPv6ND_NA].tgt for a in answers} == {target.ipv6, target.ipv6_ll}


def test_multicast_echo_matches_ping(lab) -> None:
    """Echo to ff02::1 from our link-local address hears every fe80:: address ping -6 ff02::1%eth0 hears
    (ping also hears ourselves: we list our own addresses as self); with every_source, from our global
    address too, it hears the global ones; every MAC is the host's."""
    need_tool("ping")
    info = lab.info
    iface = info.scanner_if
    res = lab.run(["ping", "-6", "-c", "2", "-i", "0.3", "-W", "1", f"ff02::1%{iface}"], timeout=30)
    heard = set(re.findall(r"bytes from ([0-9a-f:]+)%\S+ icmp_seq=1 ", res.stdout))
    with netns(lab.ns):
        result = ndp.multicast_echo(iface, timeout=0.5, every_source=True)
        as_ping = ndp.multicast_echo(iface, timeout=0.3, retries=0)
    macs = {h.ipv6_ll: h.mac for h in info.hosts} | {info.router_ipv6_ll: info.router_mac}
    globals_ = {h.ipv6: h.mac for h in info.hosts} | {info.router_ipv6: info.router_mac}
    assert heard == set(macs) | {info.scanner_ipv6_ll}, res.stdout
    expected = {f"{a}%{iface}": m for a, m in macs.items()} | globals_
    assert _up(result) == expected
    rows = {h.address: h for h in result.hosts}
    assert {a for a, h in rows.items() if h.reason == "self"} == {info.scanner_ipv6, f"{info.scanner_ipv6_ll}%{iface}"}
    assert all(rows[a].reason == rows[a].reply == "echo-reply" and rows[a].ttl == 64 and rows[a].vendor for a in expected)
    assert result.stats.method == "mcast-echo" and result.stats.sent == 4  # two sources, one retry round
    assert {h.address.split("%")[0] for h in as_ping.up} == heard and as_ping.stats.sent == 1


def test_discover_scoped_and_local(lab) -> None:
    """discover(): scoped fe80::X%eth0 by NS, ff02::1%eth0 by echo, --local eth0 (its /64 is too big to
    solicit, so multicast echo only); one merged row per address."""
    from recon.targets import build_targets

    info = lab.info
    iface = info.scanner_if
    phone = info.hosts[0]
    with netns(lab.ns):
        scoped = build_targets([f"{phone.ipv6_ll}%{iface}", "fe80::dead:1%" + iface]).scoped
        one = ndp.discover(scoped, timeout=0.3, retries=0)
        local = ndp.discover(local=[iface], timeout=0.3, retries=0)
        both = ndp.discover(build_targets([f"ff02::1%{iface}", f"{phone.ipv6_ll}%{iface}"]).scoped, timeout=0.3, retries=0)
    assert [(h.address, h.status, h.mac) for h in one.hosts] == [
        (f"fe80::dead:1%{iface}", "down", None), (f"{phone.ipv6_ll}%{iface}", "up", phone.mac)]
    assert one.stats.method == "ndp"
    assert len(local.up) == 2 * (len(info.hosts) + 1) + 2 and local.stats.method == "mcast-echo"
    addresses = [h.address for h in both.hosts]
    assert len(addresses) == len(set(addresses)) and both.stats.method == "ndp+mcast-echo"
    assert {h.address for h in both.up} == {h.address for h in local.up if "%" in h.address}  # fe80:: only, as ping


def test_small_on_link_prefix_is_solicited(lab) -> None:
    """--local solicits every address of an on-link prefix of at most LOCAL_PREFIX_LIMIT addresses: given
    2001:db8::1e/123 for the test, it also finds the router's anycast 2001:db8:: (which echo never hears);
    a limit below the /123's 32 addresses leaves it to the echo."""
    info = lab.info
    iface = info.scanner_if
    lab.run(["ip", "-6", "addr", "add", "2001:db8::1e/123", "dev", iface, "nodad"]).check_returncode()
    try:
        with netns(lab.ns):
            result = ndp.discover(local=[iface], timeout=1.2, retries=0)
            capped = ndp.discover(local=[iface], timeout=0.2, retries=0, limit=31)
    finally:
        lab.run(["ip", "-6", "addr", "del", "2001:db8::1e/123", "dev", iface]).check_returncode()
    assert result.stats.method == "mcast-echo+ndp" and capped.stats.method == "mcast-echo"
    rows = {h.address: h for h in result.hosts}
    assert rows[info.router_anycast6].reason == "nd-advert" and rows[info.router_anycast6].mac == info.router_mac
    assert rows["2001:db8::1e"].reason == "self" and info.router_anycast6 not in {h.address for h in capped.hosts}
    assert len(result.hosts) == 32 + len(info.hosts) + 2  # the /123, and the fe80:: rows of the echo (hosts, router, us)


def test_bad_interfaces_are_one_line_errors(lab) -> None:
    """An unknown interface, a non-Ethernet one (lo) and a multicast NS target are InvalidOption/InvalidTarget."""
    with netns(lab.ns):
        with pytest.raises(InvalidOption, match="no such interface"):
            ndp.solicit("nosuch0", ["fe80::1"])
        with pytest.raises(InvalidOption, match="not an Ethernet interface"):
            ndp.multicast_echo("lo")
        with pytest.raises(InvalidOption, match="--local"):
            ndp.discover(local=["nosuch0"])
        with pytest.raises(InvalidTarget, match="unicast"):
            ndp.solicit(lab.info.scanner_if, ["ff02::1"])
        with pytest.raises(InvalidTarget, match="multicast group"):
            ndp.multicast_echo(lab.info.scanner_if, group="2001:db8::1")


def test_onlink_interface_follows_the_routes(lab) -> None:
    """The LAN /64 is on-link on eth0; the wider /32 goes via the router, fe80:: needs a scope, and every
    routed lab range (sparse6, dense6, anyip6) is not on-link."""
    info = lab.info
    with netns(lab.ns):
        routes = ndp.routes6()
        assert ndp.onlink_interface(info.hosts[0].ipv6) == info.scanner_if
    assert (ipaddress.IPv6Network(info.lan6_cidr), info.scanner_if, True) in routes
    assert ndp.onlink_interface(info.scanner_ipv6, routes) == info.scanner_if
    assert ndp.onlink_interface(info.hosts[0].ipv6_ll, routes) is None
    for r in info.ranges:
        if r.family == 6 and not r.on_link:
            assert ndp.onlink_interface(ipaddress.IPv6Network(r.cidr)[1], routes) is None, r.name


# --- the CLI: recon sweep --local IFACE, and scoped targets -------------------------------------------


def _rows(stdout: str) -> dict[str, dict]:
    """The sweep's JSON lines by address."""
    import json

    return {o["address"]: o for o in map(json.loads, stdout.splitlines())}


def test_cli_local_finds_what_nmap_multicast_echo_finds(lab) -> None:
    """recon sweep --local eth0 lists every host nmap's targets-ipv6-multicast-echo lists, with the same MACs
    (nmap echoes from one source, fe80:: or global as it picks; we from each, so both show), and our own
    addresses (self); the table shows the same rows."""
    need_tool("nmap")
    info = lab.info
    iface = info.scanner_if
    out = lab.run(["nmap", "-6", "-n", "-sn", "--script", "targets-ipv6-multicast-echo",
                   "--script-args", f"interface={iface}"], timeout=60).stdout
    nmap = {a: ":".join(re.findall("..", m)) for a, m in re.findall(r"IP: ([0-9a-f:]+)\s+MAC: ([0-9a-f]{12})", out)}
    assert len(nmap) == len(info.hosts) + 1, out
    res = lab.recon("sweep", "--local", iface, "-W", "0.5", "--json")
    assert res.returncode == 0, res.stderr
    rows = _rows(res.stdout)
    ours = {a.split("%")[0]: r["mac"] for a, r in rows.items() if r["reason"] == "echo-reply"}
    fe80 = {a: m for a, m in ours.items() if a.startswith("fe80::")}
    assert nmap.items() <= ours.items() and len(fe80) == len(ours) - len(fe80) == len(nmap)
    assert all(a.endswith(f"%{iface}") for a in rows if a.startswith("fe80::"))
    assert (rows[info.scanner_ipv6]["reason"], rows[info.scanner_ipv6]["mac"]) == ("self", info.scanner_mac)
    for h in info.hosts:
        assert (rows[h.ipv6]["mac"], rows[h.ipv6]["reason"], rows[h.ipv6]["ttl"]) == (h.mac, "echo-reply", 64)
        assert rows[h.ipv6]["vendor"].startswith(h.vendor.split()[0])
    assert re.fullmatch(r"\d+ hosts up of \d+ scanned in [\d.]+ s\n", res.stderr), res.stderr  # no duplicates claimed
    table = lab.recon("sweep", "--local", iface, "-W", "0.5")
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["address", "rtt", "ttl", "reason", "mac", "vendor", "hostname"]
    assert {line.split()[0] for line in lines[2:]} == set(rows)


def test_cli_scoped_targets_with_ipv4(lab) -> None:
    """ff02::1%eth0 and fe80::X%eth0 beside an IPv4 range: one result, ARP rows and IPv6 rows alike (MAC, vendor);
    the silent fe80:: target is down with -a; nothing is a traceback."""
    info = lab.info
    iface = info.scanner_if
    phone = info.hosts[0]
    res = lab.recon("sweep", f"ff02::1%{iface}", f"{phone.ipv6_ll}%{iface}", f"fe80::dead:2%{iface}", "198.18.0.10-11",
                    "--all", "-W", "0.5", "--json")
    assert res.returncode == 0, res.stderr
    rows = _rows(res.stdout)
    assert (rows["198.18.0.10"]["reason"], rows["198.18.0.10"]["mac"]) == ("arp-reply", phone.mac)
    assert (rows[f"{phone.ipv6_ll}%{iface}"]["status"], rows[f"{phone.ipv6_ll}%{iface}"]["mac"]) == ("up", phone.mac)
    assert rows[f"fe80::dead:2%{iface}"]["status"] == "down"
    for h in info.hosts:  # the group is asked from our fe80:: address, as ping does: members answer from theirs
        assert rows[f"{h.ipv6_ll}%{iface}"]["mac"] == h.mac and h.ipv6 not in rows
    assert list(rows)[:2] == ["198.18.0.10", "198.18.0.11"]  # IPv4 first, then IPv6 in address order
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--local", "nosuch0"], "invalid --local 'nosuch0': no such interface"),
    (["--local", "lo"], "invalid --local 'lo': not an Ethernet interface"),
    (["fe80::1%nosuch0"], "no interface 'nosuch0' here"),
    (["--local", "eth0", "--cluster", "local:1"], "cannot be combined with --cluster"),
])
def test_cli_bad_local_input_is_one_line(lab, args: list[str], message: str) -> None:
    """Bad interfaces and clashing options: one line on stderr, exit 2, nothing sent, no traceback."""
    res = lab.recon("sweep", *args)
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1 and message in res.stderr and not res.stdout, res.stderr


def test_cli_local_writes_a_pcap(lab, tmp_path) -> None:
    """-w with --local writes every echo and answer as Ethernet frames; recon sniff -r reads them back."""
    pcap = tmp_path / "local.pcap"
    res = lab.recon("sweep", "--local", lab.info.scanner_if, "-W", "0.3", "-r", "0", "-w", str(pcap))
    assert res.returncode == 0, res.stderr
    from recon.pcap import read_frames

    frames = [bytes(f.data) for f in read_frames(str(pcap))]
    echoes = [f for f in frames if ndp.parse_echo_reply(f)]
    assert len(frames) == 2 + len(echoes) and len(echoes) == 2 * (len(lab.info.hosts) + 1)
    sniff = lab.recon("sniff", "-r", str(pcap), "-n")
    assert sniff.returncode == 0 and sniff.stdout.count("\n") == len(frames), sniff.stderr


def test_cli_local_with_other_targets_streams_and_writes_one_pcap(lab, tmp_path) -> None:
    """--local eth0 beside ARP and routed targets, with -w (refused before, and printed only at the end): the
    IPv4 rows come while the link is still being asked (most of a whole -W before the end: the link is asked
    beside the IPv4 part, -W 2 leaves room for its head start), the link's rows follow, each address once; one
    Ethernet pcap holds the ARP frames, the routed probes framed and the link's frames."""
    import time

    info = lab.info
    pcap = tmp_path / "all.pcap"
    t0 = time.monotonic()
    proc = lab.popen([sys.executable, "-m", "recon", "sweep", "--local", info.scanner_if, "198.18.0.10-11", "198.18.2.0/29",
                      "-W", "2", "-r", "0", "--probe", "echo", "--json", "-w", str(pcap)],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()  # type: ignore[union-attr]  # stdout=PIPE
    at_first = time.monotonic() - t0
    out = proc.stdout.read()  # type: ignore[union-attr]  # through the reader readline() used: nothing lost (stderr is a line)
    total = time.monotonic() - t0
    err = proc.stderr.read()  # type: ignore[union-attr]  # stderr=PIPE
    proc.wait(timeout=60)
    assert proc.returncode == 0, err
    rows = _rows(first + out)
    assert len(rows) == len((first + out).splitlines())
    assert json.loads(first)["address"].startswith("198.18.") and at_first < total - 0.9, (at_first, total)
    assert rows["198.18.0.10"]["reason"] == "arp-reply" and rows["198.18.2.1"]["reason"] == "echo-reply"
    for h in info.hosts:
        assert rows[h.ipv6]["mac"] == rows[f"{h.ipv6_ll}%{info.scanner_if}"]["mac"] == h.mac
    from recon.pcap import LINKTYPE_ETHERNET, read_frames

    frames = list(read_frames(str(pcap)))
    kinds = {bytes(f.data)[12:14] for f in frames}
    assert {f.linktype for f in frames} == {LINKTYPE_ETHERNET} and kinds == {b"\x08\x06", b"\x08\x00", b"\x86\xdd"}
    sniff = lab.recon("sniff", "-r", str(pcap), "-n")
    assert sniff.returncode == 0 and sniff.stdout.count("\n") == len(frames), sniff.stderr


def _echo_requests(frames: list[bytes]) -> list[int]:
    """Each Ethernet frame's IP version when it is an echo request (ICMP type 8, ICMPv6 type 128), else 0."""
    kinds = []
    for f in frames:
        if f[12:14] == b"\x08\x00" and f[23] == 1:
            kinds.append(4 if f[14 + 4 * (f[14] & 15)] == 8 else 0)
        else:
            kinds.append(6 if f[12:14] == b"\x86\xdd" and f[20] == 58 and f[54] == 128 else 0)
    return kinds


def test_cli_local_asks_the_link_beside_the_ipv4_part(lab, tmp_path) -> None:
    """--local eth0 beside a sparse /24 with -W 1 -r 1: the link's echoes leave at the start, beside the IPv4 part,
    before its retry round goes out after the first 1 s wait (they left only once the IPv4 part had ended, so the
    sweep took the sum of the parts' times, not the longest); the rows keep their order, the IPv4 part's first,
    then the link's, each address once."""
    info = lab.info
    sparse = info.range("sparse24")
    pcap = tmp_path / "beside.pcap"
    res = lab.recon("sweep", "--local", info.scanner_if, sparse.cidr, "-W", "1", "-r", "1", "--probe", "echo", "--json",
                    "-w", str(pcap))
    assert res.returncode == 0, res.stderr
    from recon.pcap import read_frames

    kinds = _echo_requests([bytes(f.data) for f in read_frames(str(pcap))])
    first6, last4 = kinds.index(6), len(kinds) - 1 - kinds[::-1].index(4)
    assert kinds.count(4) > 256 and first6 < last4, (first6, last4, len(kinds))  # the retry round came after the echo
    lines = [json.loads(line)["address"] for line in res.stdout.splitlines()]
    v4 = [i for i, a in enumerate(lines) if ":" not in a]
    assert set(lines[: len(v4)]) == set(sparse.up or ()) and v4 == list(range(len(v4)))
    assert {h.ipv6 for h in info.hosts} <= set(lines[len(v4):]) and len(set(lines)) == len(lines)


def test_cli_ctrl_c_in_the_ipv4_part_prints_the_link_hosts_found(lab, tmp_path) -> None:
    """--local eth0 beside a sparse /24 and far6.lab with -W 5 -r 0: SIGINT once the link's hosts and far6.lab have
    answered (their echo replies are in the pcap), while the IPv4 part still waits out its 5 s: exit 130 well
    inside that wait, and the hosts the link and the IPv6 part found by then are printed after the IPv4 part's,
    up rows only (after a stop the silent are undecided), each once. Before, the link was asked only after the
    IPv4 part, so none had answered; then, asked beside it, the hosts it had found were dropped at the stop, as
    the IPv6 part's were."""
    import time

    from recon.pcap import read_frames

    info = lab.info
    sparse = info.range("sparse24")
    pcap = tmp_path / "cut.pcap"
    proc = lab.popen([sys.executable, "-m", "recon", "sweep", "--local", info.scanner_if, sparse.cidr, info.far_ipv6, "-W", "5",
                      "-r", "0", "--probe", "echo", "--json", "-w", str(pcap)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = proc.stdout.readline()  # type: ignore[union-attr]  # stdout=PIPE: the IPv4 part has begun
        # readiness: every host on the link has answered the global echo, and far6.lab its own (the pcap holds
        # each frame as it is read)
        hosts = {ipaddress.IPv6Address(a).packed for a in [h.ipv6 for h in info.hosts] + [info.far_ipv6]}
        deadline = time.monotonic() + 4  # inside the IPv4 part's 5 s wait
        heard: set[bytes] = set()
        while not hosts <= heard and time.monotonic() < deadline:
            time.sleep(0.05)
            heard = {f[22:38] for f in (bytes(r.data) for r in read_frames(str(pcap)))
                     if ndp.parse_echo_reply(f) and f[12:14] == b"\x86\xdd"}
        assert hosts <= heard, "the link's hosts and far6.lab had not answered while the IPv4 part waited"
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        took = time.monotonic() - sent
        out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]  # through readline()'s reader
    finally:
        proc.kill()
    assert proc.returncode == 130 and took < 5 / 2, (took, err)
    rows = [json.loads(line) for line in (first + out).splitlines()]
    addresses = [r["address"] for r in rows]
    v4 = [i for i, a in enumerate(addresses) if ":" not in a]
    assert v4 == list(range(len(v4))) and set(addresses[: len(v4)]) <= set(sparse.up or ())
    assert {h.ipv6 for h in info.hosts} | {info.far_ipv6} <= set(addresses[len(v4):]), addresses
    assert all(r["status"] == "up" for r in rows) and len(set(addresses)) == len(addresses)
    assert "sweep interrupted" in err and f"{len(rows)} hosts up" in err, err


def test_cli_local_alone_prints_each_host_as_it_answers(lab) -> None:
    """--local eth0 --json: the first host on the link is printed as it answers the multicast echo, long before
    the echo's 1 s wait ends (it was printed after the whole discovery)."""
    import time

    t0 = time.monotonic()
    proc = lab.popen([sys.executable, "-m", "recon", "sweep", "--local", lab.info.scanner_if, "-W", "1", "-r", "0", "--json"],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()  # type: ignore[union-attr]  # stdout=PIPE
    at_first = time.monotonic() - t0
    out = proc.stdout.read()  # type: ignore[union-attr]  # through the reader readline() used
    total = time.monotonic() - t0
    err = proc.stderr.read()  # type: ignore[union-attr]  # stderr=PIPE
    proc.wait(timeout=60)
    assert proc.returncode == 0, err
    rows = _rows(first + out)
    assert json.loads(first)["reason"] == "echo-reply" and len(rows) == 2 * (len(lab.info.hosts) + 2)
    assert at_first < total - 0.8, (at_first, total)


def test_cli_ctrl_c_ends_local_at_once(lab, tmp_path) -> None:
    """SIGINT once the first host on the link is printed (the multicast echo has answered and now waits out its
    -W 5, then Neighbor Discovery would wait 5 more): exit 130, whole JSON lines, the 'interrupted' line, a pcap
    of whole records, and the end well inside the echo's wait, where before the running part waited it out
    (and the IPv4 engine already stopped at once)."""
    import time

    from recon.pcap import read_frames

    pcap = tmp_path / "cut.pcap"
    proc = lab.popen([sys.executable, "-m", "recon", "sweep", "--local", lab.info.scanner_if, "-W", "5", "-r", "0", "--json",
                      "--all", "-w", str(pcap)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = proc.stdout.readline()  # type: ignore[union-attr]  # the readiness signal: a host answered
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)  # the output is small: the pipes hold it
        took = time.monotonic() - sent
        # through the reader readline() used: communicate() reads the pipe itself and loses what readline() buffered
        # (a burst of answers comes in one write), which once read as '14 hosts up' with 3 rows
        out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]  # stdout=stderr=PIPE
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert took < 5 / 2, (took, err)  # half the part's own wait: it stopped, it did not wait out its timeout
    lines = (first + out).splitlines(keepends=True)
    rows = [json.loads(line) for line in lines]
    assert all(line.endswith("\n") for line in lines) and rows
    assert all(r["status"] == "up" for r in rows)  # after a stop the silent are undecided, as in the IPv4 part: no down rows
    assert len({r["address"] for r in rows}) == len(rows)
    assert "sweep interrupted" in err and f"{len(rows)} hosts up" in err, err
    frames = list(read_frames(str(pcap)))  # whole records only, or it raises
    assert frames and all(bytes(f.data)[12:14] == b"\x86\xdd" for f in frames)
    solicitations = [f for f in map(bytes, (f.data for f in frames)) if f[20] == 58 and f[54] == 135]  # ICMPv6 NS
    assert not solicitations  # the next part (Neighbor Discovery) never started


@pytest.mark.parametrize("target", ["ff02::1%lo", "fe80::1%lo", "ff02::2%eth0", "fe80::1%eth0"])
def test_cli_other_scoped_targets_never_trace_back(lab, target: str) -> None:
    """Scoped targets ndp cannot serve (lo: no link layer; goes by ICMPv6 echo) or that nobody answers: a
    summary line and exit 0 or 1, never a traceback."""
    res = lab.recon("sweep", target, "-W", "0.2", "-r", "0")
    assert res.returncode in (0, 1) and "Traceback" not in res.stderr, res.stderr
    assert re.search(r"\d+ hosts? up of \d+ scanned", res.stderr), res.stderr


def test_an_interface_that_is_down_says_so(lab) -> None:
    """A down Ethernet interface has no link-local address: one line that says it may be down, exit 2."""
    lab.run(["ip", "link", "add", "ndpdown0", "type", "veth", "peer", "name", "ndpdown1"]).check_returncode()  # both ends down
    try:
        res = lab.recon("sweep", "--local", "ndpdown0")
    finally:
        lab.run(["ip", "link", "del", "ndpdown0"]).check_returncode()
    assert res.returncode == 2 and "is it down" in res.stderr and res.stderr.count("\n") == 1, res.stderr



def test_cli_source_for_on_link_ipv6(lab) -> None:
    """--source 2001:db8::2 with a scoped fe80:: target (through the engine) and with --local: the hosts answer;
    an IPv4 --source for --local alone is one line, exit 2."""
    info = lab.info
    phone = info.hosts[0]
    res = lab.recon("sweep", f"{phone.ipv6_ll}%eth0", "--source", info.scanner_ipv6, "--json")
    assert res.returncode == 0 and _rows(res.stdout)[f"{phone.ipv6_ll}%eth0"]["mac"] == phone.mac, res.stderr
    local = lab.recon("sweep", "--local", "eth0", "--source", info.scanner_ipv6, "-W", "0.3", "--json")
    rows = _rows(local.stdout)
    assert {h.ipv6 for h in info.hosts} <= set(rows) and not any(a.startswith("fe80::") and r["reason"] != "self"
                                                                 for a, r in rows.items())
    v4 = lab.recon("sweep", "--local", "eth0", "--source", info.scanner_ipv4)
    assert v4.returncode == 2 and "invalid --source" in v4.stderr and v4.stderr.count("\n") == 1, v4.stderr
