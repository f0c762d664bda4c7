"""What the namespace lab is, and how it is built: one function per segment.

Everything lives in network namespaces named ``<lab>-<role>`` and in
198.18.0.0/15 (IPv6: 2001:db8::/32). The root namespace's routes and addresses
are never touched: every veth is created directly inside its namespaces.

    scan (198.18.0.2, no default route; 198.18.0.0/15 via the router)
      │ eth0
    [ sw: bridge br0 ]── h phone .10 (Apple)   h pi .11 (Raspberry Pi)
      │                  h printer .12 (HP)    h laptop .13 (Intel)   h tv .14 (Samsung)
    rtr 198.18.0.1 (Cisco MAC), forwards; 198.18.3.0/24 is rejected (host unreachable)
      ├─ veth 198.18.4.0/30 ── far: AnyIP 198.18.2.0/24 and 198.19.0.0/16 (dense),
      │                          /32s in 198.18.1.0/24, 198.18.16.0/20, 198.18.128.0/17 (sparse),
      │                          ip_forward off (dead addresses are dropped silently)
      └─ tun  198.18.4.4/30 ── wan: AnyIP 198.18.5.0/24 behind a userspace link emulator
                                 (delay and jitter on the replies; MTU 1400, so DF probes
                                 over 1400 bytes get 'fragmentation needed' from the router)

``build(name)`` makes it and returns its truth (``LabInfo``); ``recon.lab.Lab`` owns
the lifecycle (state file, impairments, the link emulator, teardown).
"""

from __future__ import annotations

import ipaddress
import os
import random
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from recon.errors import LabError
from recon.models import LabHost, LabInfo, LabRange

__all__ = ["LAN_HOSTS", "ROUTER_MAC", "SCANNER_MAC", "Roles", "build", "check_tools", "existing_namespaces", "lab_ranges", "run"]

# name, last octet, MAC, vendor (as in Scapy's manuf database)
LAN_HOSTS: tuple[tuple[str, int, str, str], ...] = (
    ("phone", 10, "3c:22:fb:12:34:56", "Apple"),
    ("pi", 11, "b8:27:eb:ab:cd:01", "Raspberry Pi Foundation"),
    ("printer", 12, "3c:d9:2b:00:10:12", "Hewlett Packard"),
    ("laptop", 13, "00:1b:21:3a:4b:5c", "Intel Corporate"),
    ("tv", 14, "8c:79:f5:77:88:99", "Samsung Electronics Co.,Ltd"),
)
SCANNER_MAC = "02:52:45:43:00:02"
ROUTER_MAC = "00:00:0c:52:45:01"

# no router solicitations, no DAD: the lab is quiet and ready at once
_QUIET = {
    "net.ipv6.conf.all.accept_ra": 0,
    "net.ipv6.conf.default.accept_ra": 0,
    "net.ipv6.conf.all.accept_dad": 0,
    "net.ipv6.conf.default.accept_dad": 0,
    "net.ipv6.conf.default.router_solicitations": 0,
    "net.ipv4.conf.all.rp_filter": 0,
    "net.ipv4.conf.default.rp_filter": 0,
}


# --- running commands --------------------------------------------------------------


def run(argv: Sequence[str], *, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), input=input, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise LabError(f"lab command failed: {' '.join(argv)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def _batch(lines: Sequence[str], ns: str | None = None) -> None:
    argv = ["ip"] + (["-n", ns] if ns else []) + ["-batch", "-"]
    run(argv, input="\n".join(lines) + "\n")


def _sysctl(ns: str, values: Mapping[str, object]) -> None:
    run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", *(f"{k}={v}" for k, v in values.items())])


def _nft(ns: str, script: str) -> None:
    run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=script)


def existing_namespaces() -> list[str]:
    proc = run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]


def check_tools() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root: it creates network namespaces", hint="run it with sudo")
    if shutil.which("ip") is None:
        raise LabError("the lab needs the 'ip' command", hint="install iproute2 (apt-get install iproute2)")
    if shutil.which("sysctl") is None:
        raise LabError("the lab needs the 'sysctl' command", hint="install procps (apt-get install procps)")


# --- the truth -------------------------------------------------------------------------


def _sparse(base: str, count: int, span: int, seed: int) -> tuple[str, ...]:
    """``count`` distinct addresses in ``base/…`` spread over ``span`` addresses."""
    rng = random.Random(seed)
    start = int(ipaddress.IPv4Address(base))
    picks = sorted(rng.sample(range(1, span - 1), count))
    return tuple(str(ipaddress.IPv4Address(start + p)) for p in picks)


def lab_ranges() -> tuple[LabRange, ...]:
    return (
        LabRange("sparse24", "198.18.1.0/24", _sparse("198.18.1.0", 16, 256, 1), "16 of 256 up"),
        LabRange("dense24", "198.18.2.0/24", None, "all 256 up (AnyIP)"),
        LabRange("sparse4k", "198.18.16.0/20", _sparse("198.18.16.0", 64, 4096, 2), "64 of 4096 up"),
        LabRange("sparse17", "198.18.128.0/17", _sparse("198.18.128.0", 256, 32768, 3), "256 of 32768 up"),
        LabRange("dense16", "198.19.0.0/16", None, "all 65536 up (AnyIP)"),
        LabRange("wan", "198.18.5.0/24", None, "all 256 up, behind the delay/jitter emulator"),
    )


@dataclass(frozen=True)
class Roles:
    """The namespaces of one lab, by role."""

    scan: str
    sw: str
    rtr: str
    far: str
    wan: str

    @classmethod
    def of(cls, lab: str) -> Roles:
        return cls(*(f"{lab}-{role}" for role in ("scan", "sw", "rtr", "far", "wan")))


def _lan_hosts(lab: str) -> tuple[LabHost, ...]:
    return tuple(
        LabHost(n, f"{lab}-{n}", f"198.18.0.{o}", f"2001:db8::{o}", mac, vendor, f"{n}.lab") for n, o, mac, vendor in LAN_HOSTS
    )


# --- the segments ------------------------------------------------------------------------


def _wire(ns: Roles, hosts: Sequence[LabHost]) -> None:
    """Every veth pair, created straight into its two namespaces (one ``ip -batch``)."""
    links = [
        f"link add eth0 netns {ns.scan} address {SCANNER_MAC} type veth peer name p-scan netns {ns.sw}",
        f"link add eth0 netns {ns.rtr} address {ROUTER_MAC} type veth peer name p-rtr netns {ns.sw}",
        f"link add eth1 netns {ns.rtr} type veth peer name eth0 netns {ns.far}",
    ] + [f"link add eth0 netns {h.netns} address {h.mac} type veth peer name p-{h.name} netns {ns.sw}" for h in hosts]
    _batch(links)


def _build_lan(ns: Roles, hosts: Sequence[LabHost]) -> None:
    """The switch, the scanner and the hosts on it."""
    # A plain switch: without this, br_netfilter hands bridged IPv4 to the IP stack's
    # checks and silently drops frames with a bad header checksum or length.
    _sysctl(ns.sw, {f"net.bridge.bridge-nf-call-{t}": 0 for t in ("iptables", "ip6tables", "arptables")})
    ports = ["p-scan", "p-rtr"] + [f"p-{h.name}" for h in hosts]
    _batch(
        ["link add br0 type bridge forward_delay 0 stp_state 0 mcast_snooping 0", "link set br0 up", "link set lo up"]
        + [f"link set {p} master br0" for p in ports]
        + [f"link set {p} up" for p in ports],
        ns.sw,
    )
    for netns, v4, v6 in [(ns.scan, "198.18.0.2", "2001:db8::2")] + [(h.netns, h.ipv4, h.ipv6) for h in hosts]:
        _batch(
            [
                "link set lo up",
                "link set eth0 up",
                f"addr add {v4}/24 dev eth0",
                f"addr add {v6}/64 dev eth0 nodad",
                "route add 198.18.0.0/15 via 198.18.0.1",
                "route add 2001:db8::/32 via 2001:db8::1",
            ],
            netns,
        )
    if shutil.which("nft"):  # the impairment chain (recon.lab.Lab.impair fills it)
        _nft(ns.sw, "table bridge reconlab {\n chain impair { type filter hook forward priority 0; policy accept; }\n}\n")


def _build_router(ns: Roles, ranges: Sequence[LabRange]) -> None:
    """The router: forwards between the LAN, the far side and the wan's TUN."""
    run(["ip", "-n", ns.rtr, "tuntap", "add", "dev", "tun-wan", "mode", "tun"])
    _batch(
        [
            "link set lo up",
            "link set eth0 up",
            "link set eth1 up",
            "link set tun-wan up mtu 1400",  # a narrower path: --df pings get 'Frag needed'
            "addr add 198.18.0.1/24 dev eth0",
            "addr add 2001:db8::1/64 dev eth0 nodad",
            "addr add 198.18.4.1/30 dev eth1",
            "addr add 2001:db8:4::1/64 dev eth1 nodad",
            "addr add 198.18.4.5 peer 198.18.4.6 dev tun-wan",
            "route add 198.18.3.0/24 via 198.18.4.2",
            "route add 198.18.5.0/24 via 198.18.4.6 dev tun-wan",
            "route add 2001:db8:2::/64 via 2001:db8:4::2",
        ]
        + [f"route add {r.cidr} via 198.18.4.2" for r in ranges if r.name != "wan"],
        ns.rtr,
    )
    _sysctl(
        ns.rtr,
        {
            "net.ipv4.ip_forward": 1,
            "net.ipv6.conf.all.forwarding": 1,
            "net.ipv4.icmp_ratelimit": 0,
            "net.ipv4.icmp_msgs_per_sec": 1000000,
            "net.ipv4.icmp_msgs_burst": 1000000,
            "net.ipv6.icmp.ratelimit": 0,
        },
    )
    # The unreachable range: an nftables reject (icmp_send, whose rate limit is off in this
    # namespace) rather than an 'unreachable' route, whose ip_error() path is limited per
    # peer by the global net.ipv4.route.error_cost (about 1/s after a burst of 5).
    _nft(
        ns.rtr,
        "table ip reconlab {\n chain unreach { type filter hook forward priority 0; policy accept;\n"
        "  ip daddr 198.18.3.0/24 reject with icmp type host-unreachable\n }\n}\n",
    )


def _build_far(ns: Roles, ranges: Sequence[LabRange]) -> None:
    """The far side: every routed range, as AnyIP routes (dense) or /32s on lo (sparse)."""
    lines = [
        "link set lo up",
        "link set eth0 up",
        "addr add 198.18.4.2/30 dev eth0",
        "addr add 2001:db8:4::2/64 dev eth0 nodad",
        "route add 198.18.0.0/15 via 198.18.4.1",
        "route add 2001:db8::/32 via 2001:db8:4::1",
        "route add local 2001:db8:2::/64 dev lo",
    ]
    for r in ranges:
        if r.name == "wan":
            continue
        if r.up is None:
            lines.append(f"route add local {r.cidr} dev lo")
        else:
            lines.extend(f"addr add {a}/32 dev lo" for a in r.up)
    _batch(lines, ns.far)
    _sysctl(ns.far, {"net.ipv4.ip_forward": 0, "net.ipv4.icmp_msgs_per_sec": 1000000, "net.ipv4.icmp_msgs_burst": 1000000})


def _build_wan(ns: Roles) -> None:
    """The wan: AnyIP behind a TUN whose other end is the link emulator (recon.labrelay)."""
    run(["ip", "-n", ns.wan, "tuntap", "add", "dev", "tun0", "mode", "tun"])
    _batch(
        [
            "link set lo up",
            "link set tun0 up",
            "addr add 198.18.4.6 peer 198.18.4.5 dev tun0",
            "route add local 198.18.5.0/24 dev lo",
            "route add 198.18.0.0/15 via 198.18.4.5 dev tun0",
        ],
        ns.wan,
    )


def _write_etc(scan: str, hosts: Sequence[LabHost]) -> None:
    """Names for the scanner (``ip netns exec`` bind-mounts /etc/netns/NS/*).

    resolv.conf points at 127.0.0.1 inside the namespace, so a name that is
    not in the hosts file fails at once and no DNS query leaves the lab.
    """
    etc = Path("/etc/netns") / scan
    etc.mkdir(parents=True, exist_ok=True)
    lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost", "198.18.0.2 scanner.lab", "198.18.0.1 router.lab gateway.lab"]
    lines += [f"{h.ipv4} {h.hostname} {h.name}" for h in hosts]
    lines += [f"{h.ipv6} {h.hostname} {h.name}" for h in hosts]
    lines += ["198.18.2.1 far.lab", "2001:db8:2::1 far6.lab", "198.18.5.1 wan.lab"]
    (etc / "hosts").write_text("\n".join(lines) + "\n")
    (etc / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")


def build(lab: str) -> LabInfo:
    """Create every namespace, link, address, route and rule of lab ``lab``; return its truth."""
    ns = Roles.of(lab)
    hosts = _lan_hosts(lab)
    namespaces = [ns.scan, ns.sw, ns.rtr, ns.far, ns.wan] + [h.netns for h in hosts]
    _batch([f"netns add {n}" for n in namespaces])
    for n in namespaces:
        _sysctl(n, _QUIET)
    _wire(ns, hosts)
    ranges = lab_ranges()
    _build_lan(ns, hosts)
    _build_router(ns, ranges)
    _build_far(ns, ranges)
    _build_wan(ns)
    _write_etc(ns.scan, hosts)
    return LabInfo(
        name=lab,
        scanner_ns=ns.scan,
        scanner_ipv4="198.18.0.2",
        scanner_ipv6="2001:db8::2",
        scanner_mac=SCANNER_MAC,
        scanner_if="eth0",
        router_ns=ns.rtr,
        router_ipv4="198.18.0.1",
        router_ipv6="2001:db8::1",
        router_mac=ROUTER_MAC,
        far_ns=ns.far,
        wan_ns=ns.wan,
        switch_ns=ns.sw,
        lan_cidr="198.18.0.0/24",
        lan6_cidr="2001:db8::/64",
        hosts=hosts,
        ranges=ranges,
        unreachable_cidr="198.18.3.0/24",
        far_ipv6="2001:db8:2::1",
        namespaces=tuple(namespaces),
    )
