"""What the namespace lab is, and how it is built: one function per segment.

Everything lives in network namespaces named ``<lab>-<role>`` and in
198.18.0.0/15 (IPv6: 2001:db8::/32). The root namespace's routes and addresses
are never touched: every veth is created directly inside its namespaces.

    scan (198.18.0.2, 2001:db8::2, no default route; 198.18.0.0/15 and 2001:db8::/32 via the router)
      │ eth0
    [ sw: bridge br0 ]── h phone .10 (Apple)   h pi .11 (Raspberry Pi)
      │                  h printer .12 (HP)    h laptop .13 (Intel)   h tv .14 (Samsung)
      │                  (each also 2001:db8::N/64 and an EUI-64 link-local; the switch has no IP)
    rtr 198.18.0.1 (Cisco MAC), forwards; 198.18.3.0/24 is rejected (host unreachable)
      ├─ veth 198.18.4.0/30 ── far: AnyIP 198.18.2.0/24 and 198.19.0.0/16 (dense),
      │                          /32s in 198.18.1.0/24, 198.18.16.0/20, 198.18.128.0/17 (sparse),
      │                          IPv6: /128s in 2001:db8:1::/120 (sparse), AnyIP 2001:db8:3::/120
      │                          and 2001:db8:2::/64; forwarding off (dead addresses are silent)
      ├─ veth 198.18.4.8/30 ── fw: hosts behind their own nftables: /32s in 198.18.6.0/24 drop
      │                          echo (timestamp and TCP answer), /32s in 198.18.7.0/24 drop all
      │                          ICMP in and out (only TCP answers; two listen on tcp/443, udp/53)
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
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from recon.errors import LabError
from recon.labrelay import setns
from recon.models import LabHost, LabInfo, LabRange, LabService

__all__ = [
    "LAN_HOSTS", "ROUTER_MAC", "SCANNER_MAC", "Roles", "build", "check_tools", "existing_namespaces", "lab_ranges", "link_local",
    "netns", "run",
]

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
    "net.ipv6.icmp.echo_ignore_multicast": 0,  # every host answers ping ff02::1 (the kernel default, made sure)
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


@contextmanager
def netns(name: str) -> Iterator[None]:
    """Run the block (this thread only) inside network namespace ``name``.

    Sockets opened inside stay in that namespace after the block ends.
    """
    home = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    try:
        setns(name)
        yield
    finally:
        try:
            setns(home)
        finally:
            os.close(home)


def _sysctl(ns: str, values: Mapping[str, object]) -> None:
    """Set sysctls of namespace ``ns`` (/proc/sys/net follows the writing thread's namespace).

    Written in-process: a ``sysctl`` process per namespace cost a third of the build.
    A ``net.bridge.*`` key is skipped when br_netfilter is not loaded (nothing to turn off).
    """
    with netns(ns):
        for key, value in values.items():
            path = Path("/proc/sys", *key.split("."))
            try:
                path.write_text(f"{value}\n")
            except FileNotFoundError:
                if not key.startswith("net.bridge."):
                    raise LabError(f"this kernel has no sysctl {key}", hint="the lab needs a Linux kernel with IPv4 and IPv6") from None
            except OSError as exc:
                raise LabError(f"cannot set {key}={value} in namespace {ns}: {exc.strerror}") from None


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


# --- the truth -------------------------------------------------------------------------


def _sparse(base: str, count: int, span: int, seed: int) -> tuple[str, ...]:
    """``count`` distinct addresses in ``base/…`` spread over ``span`` addresses."""
    rng = random.Random(seed)
    start = ipaddress.ip_address(base)
    picks = sorted(rng.sample(range(1, span - 1), count))
    return tuple(str(start + p) for p in picks)


def link_local(mac: str) -> str:
    """The EUI-64 link-local address the kernel gives an interface with this MAC (RFC 4291 app. A)."""
    b = bytes.fromhex(mac.replace(":", ""))
    eui = bytes([b[0] ^ 0x02]) + b[1:3] + b"\xff\xfe" + b[3:]
    return str(ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + eui))


@dataclass(frozen=True)
class Roles:
    """The namespaces of one lab, by role."""

    scan: str
    sw: str
    rtr: str
    far: str
    wan: str
    fw: str

    @classmethod
    def of(cls, lab: str) -> Roles:
        return cls(*(f"{lab}-{role}" for role in ("scan", "sw", "rtr", "far", "wan", "fw")))


_ROUTED = ("echo", "timestamp", "tcp-rst", "udp-unreach")  # what a plain host's kernel answers
_ROUTED6 = ("echo", "tcp-rst", "udp-unreach")
# An IPv6 AnyIP route holds no address, so the kernel sources its ICMPv6 errors elsewhere.
_ANYIP6_UNREACH = "UDP to a closed port gets port unreachable from 2001:db8:4::2, not from the address"


def lab_ranges(ns: Roles) -> tuple[LabRange, ...]:
    """Every range and its truth. The names of the first six are kept for older callers."""
    noicmp = _sparse("198.18.7.0", 16, 256, 7)
    listeners = tuple(LabService(a, proto, port) for a in noicmp[:2] for proto, port in (("tcp", 443), ("udp", 53)))
    return (
        LabRange("sparse24", "198.18.1.0/24", _sparse("198.18.1.0", 16, 256, 1), "16 of 256 up",
                 answers=_ROUTED, netns=ns.far),
        LabRange("dense24", "198.18.2.0/24", None, "all 256 up (AnyIP)", answers=_ROUTED, netns=ns.far),
        LabRange("sparse4k", "198.18.16.0/20", _sparse("198.18.16.0", 64, 4096, 2), "64 of 4096 up",
                 answers=_ROUTED, netns=ns.far),
        LabRange("sparse17", "198.18.128.0/17", _sparse("198.18.128.0", 256, 32768, 3), "256 of 32768 up",
                 answers=_ROUTED, netns=ns.far),
        LabRange("dense16", "198.19.0.0/16", None, "all 65536 up (AnyIP)", answers=_ROUTED, netns=ns.far),
        LabRange("wan", "198.18.5.0/24", None, "all 256 up, behind the delay/jitter emulator", answers=_ROUTED, netns=ns.wan),
        LabRange("noecho24", "198.18.6.0/24", _sparse("198.18.6.0", 16, 256, 6),
                 "16 of 256 up; they drop ICMP echo but answer timestamp and TCP (nmap -PP, -PS, -PA)",
                 answers=("timestamp", "tcp-rst", "udp-unreach"), netns=ns.fw),
        LabRange("noicmp24", "198.18.7.0/24", noicmp,
                 f"16 of 256 up; they drop all ICMP in and out, only TCP answers; {noicmp[0]} and {noicmp[1]} "
                 "listen on tcp/443 (SYN-ACK) and udp/53 (echoes any datagram)",
                 answers=("tcp-rst",), services=listeners, netns=ns.fw),
        LabRange("sparse6", "2001:db8:1::/120", _sparse("2001:db8:1::", 7, 256, 61), "7 of 256 up (/128s)",
                 family=6, answers=_ROUTED6, netns=ns.far),
        LabRange("dense6", "2001:db8:3::/120", None, f"all 256 up (AnyIP); {_ANYIP6_UNREACH}",
                 family=6, answers=("echo", "tcp-rst"), netns=ns.far),
        LabRange("anyip6", "2001:db8:2::/64", None, f"every address up (AnyIP); far6.lab is 2001:db8:2::1; {_ANYIP6_UNREACH}",
                 family=6, answers=("echo", "tcp-rst"), netns=ns.far),
        LabRange("lan6", "2001:db8::/64", (*(f"2001:db8::{o}" for _, o, _, _ in LAN_HOSTS), "2001:db8::1"),
                 "the five LAN hosts and the router, on the scanner's link; not listed: the scanner (2001:db8::2) and the "
                 "router's subnet-router anycast 2001:db8:: (answers NS; echo replies come from 2001:db8::1)",
                 family=6, answers=("echo", "ns", "tcp-rst"), on_link="eth0"),
        LabRange("lan6ll", "fe80::/64", (*(link_local(m) for _, _, m, _ in LAN_HOSTS), link_local(ROUTER_MAC)),
                 "link-local (EUI-64) addresses of the five LAN hosts and the router; ping -6 ff02::1%eth0 gets one "
                 "reply from each, and one from the scanner itself",
                 family=6, answers=("echo", "mcast-echo", "ns", "tcp-rst"), on_link="eth0"),
    )


def _lan_hosts(lab: str) -> tuple[LabHost, ...]:
    return tuple(
        LabHost(n, f"{lab}-{n}", f"198.18.0.{o}", f"2001:db8::{o}", mac, vendor, f"{n}.lab", link_local(mac))
        for n, o, mac, vendor in LAN_HOSTS
    )


# --- the segments ------------------------------------------------------------------------


def _wire(ns: Roles, hosts: Sequence[LabHost]) -> None:
    """Every veth pair, created straight into its two namespaces (one ``ip -batch``)."""
    links = [
        f"link add eth0 netns {ns.scan} address {SCANNER_MAC} type veth peer name p-scan netns {ns.sw}",
        f"link add eth0 netns {ns.rtr} address {ROUTER_MAC} type veth peer name p-rtr netns {ns.sw}",
        f"link add eth1 netns {ns.rtr} type veth peer name eth0 netns {ns.far}",
        f"link add eth2 netns {ns.rtr} type veth peer name eth0 netns {ns.fw}",
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


# ICMP errors unthrottled, so every probe of a sweep gets its answer (per-peer limits are per second)
_NO_ICMP_LIMITS = {
    "net.ipv4.icmp_ratelimit": 0,
    "net.ipv4.icmp_msgs_per_sec": 1000000,
    "net.ipv4.icmp_msgs_burst": 1000000,
    "net.ipv6.icmp.ratelimit": 0,
}


def _build_router(ns: Roles, ranges: Sequence[LabRange]) -> None:
    """The router: forwards between the LAN, the far side, the firewalled hosts and the wan's TUN."""
    run(["ip", "-n", ns.rtr, "tuntap", "add", "dev", "tun-wan", "mode", "tun"])
    gateway = {ns.far: ("198.18.4.2", "2001:db8:4::2"), ns.fw: ("198.18.4.10", "")}
    routes = [f"route add {r.cidr} via {gateway[r.netns][r.family == 6]}" for r in ranges if r.netns in gateway]
    _batch(
        [
            "link set lo up",
            "link set eth0 up",
            "link set eth1 up",
            "link set eth2 up",
            "link set tun-wan up mtu 1400",  # a narrower path: --df pings get 'Frag needed'
            "addr add 198.18.0.1/24 dev eth0",
            "addr add 2001:db8::1/64 dev eth0 nodad",
            "addr add 198.18.4.1/30 dev eth1",
            "addr add 2001:db8:4::1/64 dev eth1 nodad",
            "addr add 198.18.4.9/30 dev eth2",
            "addr add 198.18.4.5 peer 198.18.4.6 dev tun-wan",
            "route add 198.18.3.0/24 via 198.18.4.2",
            "route add 198.18.5.0/24 via 198.18.4.6 dev tun-wan",
            *routes,
        ],
        ns.rtr,
    )
    _sysctl(ns.rtr, {"net.ipv4.ip_forward": 1, "net.ipv6.conf.all.forwarding": 1, **_NO_ICMP_LIMITS})
    # The unreachable range: an nftables reject (icmp_send, whose rate limit is off in this
    # namespace) rather than an 'unreachable' route, whose ip_error() path is limited per
    # peer by the global net.ipv4.route.error_cost (about 1/s after a burst of 5).
    _nft(
        ns.rtr,
        "table ip reconlab {\n chain unreach { type filter hook forward priority 0; policy accept;\n"
        "  ip daddr 198.18.3.0/24 reject with icmp type host-unreachable\n }\n}\n",
    )


def _host_lines(ranges: Sequence[LabRange]) -> list[str]:
    """Addresses on lo: an AnyIP route for a dense range, one /32 (/128) per live address of a sparse one."""
    lines = []
    for r in ranges:
        if r.up is None:
            lines.append(f"route add local {r.cidr} dev lo")
        else:
            lines.extend(f"addr add {a}/{32 if r.family == 4 else 128} dev lo" for a in r.up)
    return lines


def _build_far(ns: Roles, ranges: Sequence[LabRange]) -> None:
    """The far side: plain hosts, forwarding off, so an address nobody holds is silent."""
    lines = [
        "link set lo up",
        "link set eth0 up",
        "addr add 198.18.4.2/30 dev eth0",
        "addr add 2001:db8:4::2/64 dev eth0 nodad",
        "route add 198.18.0.0/15 via 198.18.4.1",
        "route add 2001:db8::/32 via 2001:db8:4::1",
    ]
    _batch(lines + _host_lines([r for r in ranges if r.netns == ns.far]), ns.far)
    _sysctl(ns.far, {"net.ipv4.ip_forward": 0, **_NO_ICMP_LIMITS})


def _build_fw(ns: Roles, ranges: Sequence[LabRange]) -> None:
    """Hosts behind their own firewall (nftables in their namespace), as nmap's -PP/-PS/-PA find them."""
    lines = ["link set lo up", "link set eth0 up", "addr add 198.18.4.10/30 dev eth0", "route add 198.18.0.0/15 via 198.18.4.9"]
    _batch(lines + _host_lines([r for r in ranges if r.netns == ns.fw]), ns.fw)
    _sysctl(ns.fw, {"net.ipv4.ip_forward": 0, **_NO_ICMP_LIMITS})
    noecho = next(r.cidr for r in ranges if r.name == "noecho24")
    noicmp = next(r.cidr for r in ranges if r.name == "noicmp24")
    _nft(
        ns.fw,
        "table ip reconlab {\n"
        f" chain input {{ type filter hook input priority 0; policy accept;\n"
        f"  ip daddr {noecho} icmp type echo-request drop\n"
        f"  ip daddr {noicmp} ip protocol icmp drop\n }}\n"
        f" chain output {{ type filter hook output priority 0; policy accept;\n"
        f"  ip saddr {noicmp} ip protocol icmp drop\n }}\n"
        "}\n",
    )


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
    _sysctl(ns.wan, _NO_ICMP_LIMITS)


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
    namespaces = [ns.scan, ns.sw, ns.rtr, ns.far, ns.wan, ns.fw] + [h.netns for h in hosts]
    _batch([f"netns add {n}" for n in namespaces])
    for n in namespaces:
        # The switch is a plain L2 device: no IPv6 on br0 or its ports (else br0 answers ff02::1).
        _sysctl(n, {**_QUIET, "net.ipv6.conf.default.disable_ipv6": 1, "net.ipv6.conf.all.disable_ipv6": 1} if n == ns.sw else _QUIET)
    _wire(ns, hosts)
    ranges = lab_ranges(ns)
    _build_lan(ns, hosts)
    _build_router(ns, ranges)
    _build_far(ns, ranges)
    _build_fw(ns, ranges)
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
        fw_ns=ns.fw,
        scanner_ipv6_ll=link_local(SCANNER_MAC),
        router_ipv6_ll=link_local(ROUTER_MAC),
        router_anycast6="2001:db8::",
    )
