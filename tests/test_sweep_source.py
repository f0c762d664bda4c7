"""`recon sweep --source` on a segment: the ARP requests carry that address as their sender
(as the kernel's own ARP does for `fping -S`, and nmap's for `-S`), still on the targets'
interface, and the hosts' replies to it count; an address the scanner cannot send from is
refused with one line, exit 2, before any frame leaves. Checked on the wire of the lab's LAN."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from recon.labbuild import SCANNER_MAC

LAN = ["198.18.0.10", "198.18.0.11", "198.18.0.12", "198.18.0.13", "198.18.0.14"]
SCANNER = bytes.fromhex(SCANNER_MAC.replace(":", ""))


def _arp(frames: list[bytes], op: int) -> list[tuple[bytes, str, str]]:
    """(sender MAC, sender address, target address) of the ARP frames with opcode ``op``."""
    return [(f[22:28], socket.inet_ntoa(f[28:32]), socket.inet_ntoa(f[38:42]))
            for f in frames if len(f) >= 42 and f[12:14] == b"\x08\x06" and f[20:22] == op.to_bytes(2, "big")]


def _requests(frames: list[bytes]) -> list[tuple[str, str]]:
    """(sender address, target address) of the scanner's who-has requests."""
    return [(spa, tpa) for sha, spa, tpa in _arp(frames, 1) if sha == SCANNER]


@contextmanager
def _extra_address(lab, cidr: str, dev: str) -> Iterator[str]:
    """``cidr`` added to the scanner's ``dev`` for the block (the lab's scanner has one address of each family)."""
    subprocess.run(["ip", "-n", lab.ns, "addr", "add", cidr, "dev", dev, *(["nodad"] if ":" in cidr else [])], check=True)
    try:
        yield cidr.split("/")[0]
    finally:
        subprocess.run(["ip", "-n", lab.ns, "addr", "del", cidr, "dev", dev], check=False)


@pytest.mark.parametrize(("cidr", "dev", "engine"), [
    ("198.18.0.77/24", "eth0", "raw"),  # a second address on the segment's interface
    ("198.18.0.77/24", "eth0", "scapy"),
    ("198.18.8.2/32", "lo", "raw"),  # held by another interface: the ARP still goes out on eth0
])
def test_source_is_the_sender_of_the_arp_requests(lab, tmp_path: Path, cidr: str, dev: str, engine: str) -> None:
    """Every who-has carries --source as its sender address, on eth0; the hosts reply to that
    address and are up; --source itself is up as this machine (it was: the requests said
    'tell 198.18.0.2' whatever --source said)."""
    phone = lab.host("phone")
    with _extra_address(lab, cidr, dev) as source, lab.capture(phone.netns, "arp", tmp_path / "lan.pcap") as wire:
        res = lab.recon("sweep", *LAN, source, "--source", source, "--engine", engine, "--json")
        assert res.returncode == 0, res.stderr
        frames = wire.wait_for(lambda f: {t for _, t in _requests(f)} >= set(LAN) and _arp(f, 2) != [])
    rows = {r["address"]: r for r in map(json.loads, res.stdout.splitlines())}
    assert {a for a, r in rows.items() if r["status"] == "up"} == {*LAN, source}
    # our own address, on the segment (no one answers our own ARP) or on lo (routed to itself): marked self
    assert rows[source]["reason"] == "self" and rows[source]["reply"] == ("self" if dev == "eth0" else "echo-reply")
    assert all(rows[a]["reason"] == "arp-reply" for a in LAN)
    assert {spa for spa, _ in _requests(frames)} == {source}
    assert ("198.18.0.10", source) in {(spa, tpa) for sha, spa, tpa in _arp(frames, 2) if sha != SCANNER}


@pytest.mark.parametrize("argv", [
    ["--source", "198.18.9.9"],  # no interface of the scanner has it
    ["--source", "198.18.9.9", "--interface", "eth0", "--method", "arp"],
    ["--source", "127.0.0.1"],  # loopback never goes on a wire
    ["--source", "0.0.0.0"],  # that would be an RFC 5227 probe, not a sweep from an address
])
def test_a_source_the_scanner_cannot_send_from_is_refused_before_any_frame(lab, tmp_path: Path, argv: list[str]) -> None:
    """One line, exit 2, saying what to give instead; no ARP request leaves (it was exit 0 and
    requests from 198.18.0.2)."""
    with lab.capture(lab.host("phone").netns, "arp", tmp_path / "lan.pcap") as wire:
        res = lab.recon("sweep", *LAN, *argv)
        marker = lab.recon("sweep", "198.18.0.11", "--json")  # the next frames: once they show, nothing came before
        assert marker.returncode == 0, marker.stderr
        frames = wire.wait_for(lambda f: ("198.18.0.2", "198.18.0.11") in _requests(f))
    assert res.returncode == 2 and res.stdout == "", (res.stdout, res.stderr)
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert f"invalid --source '{argv[1]}'" in res.stderr and "ip -4 addr" in res.stderr
    assert _requests(frames) == [("198.18.0.2", "198.18.0.11")]


def test_a_source_with_leading_zeros_is_read_as_decimal_like_the_targets(lab) -> None:
    """'198.018.000.002' is 198.18.0.2, as sweep reads its targets, for the routed probes' sockets as for ARP
    (it was handed to bind(), whose inet_aton reads '018' as octal and refused it: exit 2)."""
    res = lab.recon("sweep", "198.18.2.3", "198.18.0.10", "--source", "198.018.000.002", "--probe", "echo", "--json")
    assert res.returncode == 0, res.stderr
    rows = {r["address"]: r for r in map(json.loads, res.stdout.splitlines())}
    assert rows["198.18.2.3"]["reason"] == "echo-reply" and rows["198.18.0.10"]["reason"] == "arp-reply"


# --- IPv6 on the link: Neighbor Discovery and multicast echo send from --source too ----------------------------

EXTRA6 = "2001:db8::77"


def _probes6(frames: list[bytes]) -> list[tuple[str, int]]:
    """(source address, ICMPv6 type) of the scanner's multicast probes: solicitations and echo requests."""
    out = []
    for f in frames:
        if len(f) > 54 and f[6:12] == SCANNER and f[12:14] == b"\x86\xdd" and f[20] == 58 and f[38] == 0xFF and f[54] in (128, 135):
            out.append((socket.inet_ntop(socket.AF_INET6, f[22:38]), f[54]))
    return out


@pytest.mark.parametrize("source", [EXTRA6, "2001:db8::2"])
@pytest.mark.parametrize("where", ["global", "link-local", "group", "local"])
def test_ipv6_probes_on_the_link_go_from_the_source(lab, tmp_path: Path, where: str, source: str) -> None:
    """Solicitations and multicast echoes carry --source as their IPv6 source, whichever address the scanner would
    pick by itself (they used to: the link-local one, or the one whose prefix holds the target)."""
    phone = lab.host("phone")
    args = {"global": [phone.ipv6], "link-local": [f"{phone.ipv6_ll}%eth0"], "group": ["ff02::1%eth0"],
            "local": ["--local", "eth0"]}[where]
    with _extra_address(lab, f"{EXTRA6}/64", "eth0"), lab.capture(phone.netns, "icmp6", tmp_path / "lan.pcap") as wire:
        res = lab.recon("sweep", *args, "--source", source, "--json")
        assert res.returncode == 0, res.stderr
        frames = wire.wait_for(lambda f: _probes6(f) != [])
    assert {s for s, _ in _probes6(frames)} == {source}, _probes6(frames)
    assert any(json.loads(row)["status"] == "up" for row in res.stdout.splitlines())


@pytest.mark.parametrize("args", [["--local", "eth0", "--source", "2001:db8::99"], ["--local", "eth0", "--source", "198.18.0.2"],
                                  ["ff02::1%eth0", "--source", "2001:db8::99"]])
def test_an_ipv6_source_the_link_lacks_is_refused(lab, args: list[str]) -> None:
    res = lab.recon("sweep", *args)
    assert res.returncode == 2 and res.stdout == "" and res.stderr.count("\n") == 1, res.stderr
    assert f"invalid --source '{args[-1]}'" in res.stderr
