"""The namespace lab: a virtual LAN that recon (and its tests) may probe safely.

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

Impairments: this kernel may lack ``sch_netem``, so loss is an nftables
``numgen random`` drop on frames the bridge delivers to the scanner (round-trip
loss = the percentage), and delay/jitter are applied by the emulator in front of
the wan range. Both can be changed while the lab runs (``Lab.impair``).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import heapq
import json
import os
import random
import secrets
import select
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Iterator, Sequence

from recon.errors import InvalidOption, LabError
from recon.models import LabHost, LabInfo, LabRange

__all__ = ["Lab", "netns", "lab_dir", "current_lab", "LAN_HOSTS"]

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

_CLONE_NEWNET = 0x40000000
_TUNSETIFF = 0x400454CA
_IFF_TUN = 0x0001
_IFF_NO_PI = 0x1000


def lab_dir() -> Path:
    return Path(os.environ.get("RECON_LAB_DIR", "/run/recon-lab"))


def _sparse(base: str, count: int, span: int, seed: int) -> tuple[str, ...]:
    """``count`` distinct addresses in ``base/…`` spread over ``span`` addresses."""
    import ipaddress

    rng = random.Random(seed)
    start = int(ipaddress.IPv4Address(base))
    picks = sorted(rng.sample(range(1, span - 1), count))
    return tuple(str(ipaddress.IPv4Address(start + p)) for p in picks)


def _ranges() -> tuple[LabRange, ...]:
    return (
        LabRange("sparse24", "198.18.1.0/24", _sparse("198.18.1.0", 16, 256, 1), "16 of 256 up"),
        LabRange("dense24", "198.18.2.0/24", None, "all 256 up (AnyIP)"),
        LabRange("sparse4k", "198.18.16.0/20", _sparse("198.18.16.0", 64, 4096, 2), "64 of 4096 up"),
        LabRange("sparse17", "198.18.128.0/17", _sparse("198.18.128.0", 256, 32768, 3), "256 of 32768 up"),
        LabRange("dense16", "198.19.0.0/16", None, "all 65536 up (AnyIP)"),
        LabRange("wan", "198.18.5.0/24", None, "all 256 up, behind the delay/jitter emulator"),
    )


# --- entering namespaces ---------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(name_or_path: str) -> None:
    path = name_or_path if name_or_path.startswith("/") else f"/run/netns/{name_or_path}"
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
    finally:
        os.close(fd)


@contextmanager
def netns(name: str) -> Iterator[None]:
    """Run the block (this thread only) inside network namespace ``name``.

    Sockets opened inside stay in that namespace after the block ends.
    """
    home = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    try:
        _setns(name)
        yield
    finally:
        try:
            if _libc.setns(home, _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "cannot return to the original namespace")
        finally:
            os.close(home)


# --- running commands --------------------------------------------------------------


def _run(argv: Sequence[str], *, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), input=input, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise LabError(f"lab command failed: {' '.join(argv)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def _batch(lines: Sequence[str], ns: str | None = None) -> None:
    argv = ["ip"] + (["-n", ns] if ns else []) + ["-batch", "-"]
    _run(argv, input="\n".join(lines) + "\n")


def _sysctl(ns: str, values: dict[str, object]) -> None:
    _run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", *(f"{k}={v}" for k, v in values.items())])


def _existing_namespaces() -> list[str]:
    proc = _run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]


def _check_tools() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root: it creates network namespaces", hint="run it with sudo")
    if shutil.which("ip") is None:
        raise LabError("the lab needs the 'ip' command", hint="install iproute2 (apt-get install iproute2)")
    if shutil.which("sysctl") is None:
        raise LabError("the lab needs the 'sysctl' command", hint="install procps (apt-get install procps)")


# --- the lab ----------------------------------------------------------------------------


class Lab:
    """Build, inspect, impair and tear down one named lab."""

    def __init__(self, name: str | None = None) -> None:
        # RECON_LAB_PREFIX lets a test session (or CI) recognise every lab it made.
        self.name = name or f"{os.environ.get('RECON_LAB_PREFIX', 'rl')}{secrets.token_hex(3)}"
        if not self.name.replace("-", "").isalnum() or len(self.name) > 24:
            raise InvalidOption("lab name", self.name, "use up to 24 letters, digits or dashes")

    # names
    def ns(self, role: str) -> str:
        return f"{self.name}-{role}"

    @property
    def state_file(self) -> Path:
        return lab_dir() / f"{self.name}.json"

    # -- info --------------------------------------------------------------------------
    def info(self) -> LabInfo:
        try:
            data = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            raise LabError(f"lab {self.name!r} is not up", hint="run 'recon lab up' first") from None
        except (OSError, ValueError) as exc:
            raise LabError(f"lab state {self.state_file} is unreadable: {exc}", hint="run 'recon lab down'") from None
        data["hosts"] = tuple(LabHost(**h) for h in data["hosts"])
        data["ranges"] = tuple(
            LabRange(r["name"], r["cidr"], tuple(r["up"]) if r["up"] is not None else None, r["note"]) for r in data["ranges"]
        )
        data["namespaces"] = tuple(data["namespaces"])
        return LabInfo(**data)

    def is_up(self) -> bool:
        try:
            return self.state_file.exists() and self.ns("scan") in _existing_namespaces()
        except OSError:
            return False

    def _save(self, info: LabInfo) -> None:
        lab_dir().mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(info), indent=1))
        os.replace(tmp, self.state_file)

    # -- up ------------------------------------------------------------------------------
    def up(self, *, loss: float = 0.0, delay_ms: float = 0.0, jitter_ms: float = 0.0) -> LabInfo:
        """Build the lab (idempotent: an existing lab of this name is returned as is)."""
        _check_tools()
        _validate_impairment(loss, delay_ms, jitter_ms)
        if self.is_up():
            return self.impair(loss=loss, delay_ms=delay_ms, jitter_ms=jitter_ms)
        self.down()  # clear half-built leftovers of the same name
        try:
            info = self._build()
            self._save(info)
            return self.impair(loss=loss, delay_ms=delay_ms, jitter_ms=jitter_ms)
        except BaseException:
            self.down()
            raise

    def _build(self) -> LabInfo:
        scan, sw, rtr, far, wan = (self.ns(r) for r in ("scan", "sw", "rtr", "far", "wan"))
        hosts = [
            LabHost(n, self.ns(n), f"198.18.0.{o}", f"2001:db8::{o}", mac, vendor, f"{n}.lab")
            for n, o, mac, vendor in LAN_HOSTS
        ]
        namespaces = [scan, sw, rtr, far, wan] + [h.netns for h in hosts]
        _batch([f"netns add {n}" for n in namespaces])

        quiet = {  # no router solicitations, no DAD: the lab is quiet and ready at once
            "net.ipv6.conf.all.accept_ra": 0,
            "net.ipv6.conf.default.accept_ra": 0,
            "net.ipv6.conf.all.accept_dad": 0,
            "net.ipv6.conf.default.accept_dad": 0,
            "net.ipv6.conf.default.router_solicitations": 0,
            "net.ipv4.conf.all.rp_filter": 0,
            "net.ipv4.conf.default.rp_filter": 0,
        }
        for n in namespaces:
            _sysctl(n, quiet)
        links = [
            f"link add eth0 netns {scan} address {SCANNER_MAC} type veth peer name p-scan netns {sw}",
            f"link add eth0 netns {rtr} address {ROUTER_MAC} type veth peer name p-rtr netns {sw}",
            f"link add eth1 netns {rtr} type veth peer name eth0 netns {far}",
        ] + [
            f"link add eth0 netns {h.netns} address {h.mac} type veth peer name p-{h.name} netns {sw}" for h in hosts
        ]
        _batch(links)


        # A plain switch: without this, br_netfilter hands bridged IPv4 to the IP stack's
        # checks and silently drops frames with a bad header checksum or length.
        _sysctl(sw, {f"net.bridge.bridge-nf-call-{t}": 0 for t in ("iptables", "ip6tables", "arptables")})
        ports = ["p-scan", "p-rtr"] + [f"p-{h.name}" for h in hosts]
        _batch(
            ["link add br0 type bridge forward_delay 0 stp_state 0 mcast_snooping 0", "link set br0 up", "link set lo up"]
            + [f"link set {p} master br0" for p in ports]
            + [f"link set {p} up" for p in ports],
            sw,
        )
        _batch(
            [
                "link set lo up",
                "link set eth0 up",
                "addr add 198.18.0.2/24 dev eth0",
                "addr add 2001:db8::2/64 dev eth0 nodad",
                "route add 198.18.0.0/15 via 198.18.0.1",
                "route add 2001:db8::/32 via 2001:db8::1",
            ],
            scan,
        )
        for h in hosts:
            _batch(
                [
                    "link set lo up",
                    "link set eth0 up",
                    f"addr add {h.ipv4}/24 dev eth0",
                    f"addr add {h.ipv6}/64 dev eth0 nodad",
                    "route add 198.18.0.0/15 via 198.18.0.1",
                    "route add 2001:db8::/32 via 2001:db8::1",
                ],
                h.netns,
            )
        _run(["ip", "-n", rtr, "tuntap", "add", "dev", "tun-wan", "mode", "tun"])
        _run(["ip", "-n", wan, "tuntap", "add", "dev", "tun0", "mode", "tun"])
        ranges = _ranges()
        routed = [r for r in ranges if r.name != "wan"]
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
            + [f"route add {r.cidr} via 198.18.4.2" for r in routed],
            rtr,
        )
        _sysctl(
            rtr,
            {
                "net.ipv4.ip_forward": 1,
                "net.ipv6.conf.all.forwarding": 1,
                "net.ipv4.icmp_ratelimit": 0,
                "net.ipv4.icmp_msgs_per_sec": 1000000,
                "net.ipv4.icmp_msgs_burst": 1000000,
                "net.ipv6.icmp.ratelimit": 0,
            },
        )
        far_lines = [
            "link set lo up",
            "link set eth0 up",
            "addr add 198.18.4.2/30 dev eth0",
            "addr add 2001:db8:4::2/64 dev eth0 nodad",
            "route add 198.18.0.0/15 via 198.18.4.1",
            "route add 2001:db8::/32 via 2001:db8:4::1",
            "route add local 2001:db8:2::/64 dev lo",
        ]
        for r in routed:
            if r.up is None:
                far_lines.append(f"route add local {r.cidr} dev lo")
            else:
                far_lines.extend(f"addr add {a}/32 dev lo" for a in r.up)
        _batch(far_lines, far)
        _sysctl(far, {"net.ipv4.ip_forward": 0, "net.ipv4.icmp_msgs_per_sec": 1000000, "net.ipv4.icmp_msgs_burst": 1000000})
        _batch(
            [
                "link set lo up",
                "link set tun0 up",
                "addr add 198.18.4.6 peer 198.18.4.5 dev tun0",
                "route add local 198.18.5.0/24 dev lo",
                "route add 198.18.0.0/15 via 198.18.4.5 dev tun0",
            ],
            wan,
        )
        # The unreachable range: an nftables reject (icmp_send, whose rate limit is off in this
        # namespace) rather than an 'unreachable' route, whose ip_error() path is limited per
        # peer by the global net.ipv4.route.error_cost (about 1/s after a burst of 5).
        _run(
            ["ip", "netns", "exec", rtr, "nft", "-f", "-"],
            input="table ip reconlab {\n chain unreach { type filter hook forward priority 0; policy accept;\n"
            "  ip daddr 198.18.3.0/24 reject with icmp type host-unreachable\n }\n}\n",
        )
        self._write_etc(scan, hosts)
        if shutil.which("nft"):
            _run(
                ["ip", "netns", "exec", sw, "nft", "-f", "-"],
                input='table bridge reconlab {\n chain impair { type filter hook forward priority 0; policy accept; }\n}\n',
            )
        return LabInfo(
            name=self.name,
            scanner_ns=scan,
            scanner_ipv4="198.18.0.2",
            scanner_ipv6="2001:db8::2",
            scanner_mac=SCANNER_MAC,
            scanner_if="eth0",
            router_ns=rtr,
            router_ipv4="198.18.0.1",
            router_ipv6="2001:db8::1",
            router_mac=ROUTER_MAC,
            far_ns=far,
            wan_ns=wan,
            switch_ns=sw,
            lan_cidr="198.18.0.0/24",
            lan6_cidr="2001:db8::/64",
            hosts=tuple(hosts),
            ranges=ranges,
            unreachable_cidr="198.18.3.0/24",
            far_ipv6="2001:db8:2::1",
            namespaces=tuple(namespaces),
        )

    def _write_etc(self, scan: str, hosts: Sequence[LabHost]) -> None:
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

    # -- impairments -------------------------------------------------------------------------
    def impair(self, *, loss: float = 0.0, delay_ms: float = 0.0, jitter_ms: float = 0.0) -> LabInfo:
        """Set loss (toward the scanner) and the wan emulator's delay/jitter now."""
        _validate_impairment(loss, delay_ms, jitter_ms)
        info = self.info()
        if loss and not shutil.which("nft"):
            raise LabError("--loss needs nftables", hint="apt-get install nftables")
        if shutil.which("nft"):
            if loss >= 100:
                rule = 'oifname "p-scan" drop'
            else:
                rule = f'oifname "p-scan" numgen random mod 10000 < {int(round(loss * 100))} drop' if loss else ""
            _run(
                ["ip", "netns", "exec", info.switch_ns, "nft", "-f", "-"],
                input=f"flush chain bridge reconlab impair\n" + (f"add rule bridge reconlab impair {rule}\n" if rule else ""),
            )
        params = lab_dir() / f"{self.name}.relay.json"
        params.write_text(json.dumps({"delay_ms": delay_ms, "jitter_ms": jitter_ms}))
        pid = info.relay_pid
        if pid and _alive(pid):
            os.kill(pid, signal.SIGHUP)
        else:
            pid = self._start_relay(info, params)
        info = replace(info, loss=loss, delay_ms=delay_ms, jitter_ms=jitter_ms, relay_pid=pid)
        self._save(info)
        return info

    def _start_relay(self, info: LabInfo, params: Path) -> int:
        log = open(lab_dir() / f"{self.name}.relay.log", "ab")
        proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; from recon.lab import _relay_main; _relay_main(sys.argv[1:])",
             info.router_ns, "tun-wan", info.wan_ns, "tun0", str(params)],
            stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        log.close()
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 10)
        line = proc.stdout.readline() if ready else b""
        proc.stdout.close()
        if line.strip() != b"ready":
            proc.kill()
            raise LabError("the lab's link emulator did not start", hint=f"see {lab_dir() / (self.name + '.relay.log')}")
        return proc.pid

    # -- down --------------------------------------------------------------------------------
    def down(self) -> list[str]:
        """Remove every namespace, process and file of this lab. Returns what was removed."""
        try:
            pid = self.info().relay_pid
        except LabError:
            pid = None
        if pid and _alive(pid):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        mine = [n for n in _existing_namespaces() if n.startswith(self.name + "-")]
        if mine:
            _batch([f"netns del {n}" for n in mine])
        shutil.rmtree(Path("/etc/netns") / self.ns("scan"), ignore_errors=True)
        for suffix in (".json", ".relay.json", ".relay.log", ".tmp"):
            (lab_dir() / f"{self.name}{suffix}").unlink(missing_ok=True)
        cur = lab_dir() / "current"
        if cur.exists() and cur.read_text().strip() == self.name:
            cur.unlink()
        return mine

    # -- running inside ------------------------------------------------------------------
    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        info = self.info()
        if not argv:
            raise InvalidOption("command", "", "give a command after '--', e.g. recon lab exec -- ping -c1 198.18.0.10")
        return ["ip", "netns", "exec", info.scanner_ns, *argv]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours is not alive
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _validate_impairment(loss: float, delay_ms: float, jitter_ms: float) -> None:
    if not 0 <= loss <= 100:
        raise InvalidOption("--loss", loss, "a percentage from 0 to 100")
    if not 0 <= delay_ms <= 10_000:
        raise InvalidOption("--delay", delay_ms, "milliseconds from 0 to 10000")
    if not 0 <= jitter_ms <= delay_ms:
        raise InvalidOption("--jitter", jitter_ms, "milliseconds from 0 to the delay")


def current_lab() -> Lab:
    """The lab that ``recon lab up`` made (or a new name, if none)."""
    try:
        return Lab((lab_dir() / "current").read_text().strip())
    except OSError:  # none yet, or not ours to read (then up() explains the privilege problem)
        return Lab()


def set_current(lab: Lab) -> None:
    lab_dir().mkdir(parents=True, exist_ok=True)
    (lab_dir() / "current").write_text(lab.name + "\n")


# --- the link emulator (a process of its own) ------------------------------------------------


def _open_tun(ns: str, name: str) -> int:
    _setns(ns)
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH", name.encode(), _IFF_TUN | _IFF_NO_PI))
    return fd


def _relay_main(argv: Sequence[str]) -> None:
    """Move packets between the router's and the wan's TUN, delaying wan→router.

    Parameters are re-read from a JSON file on SIGHUP. Ends on SIGTERM, or when
    a namespace disappears (its TUN read fails).
    """
    rtr_ns, rtr_if, wan_ns, wan_if, params_path = argv
    near = _open_tun(rtr_ns, rtr_if)
    far = _open_tun(wan_ns, wan_if)
    params = {"delay_ms": 0.0, "jitter_ms": 0.0}

    def reload(*_: object) -> None:
        try:
            params.update(json.loads(Path(params_path).read_text()))
        except (OSError, ValueError):
            pass

    reload()
    signal.signal(signal.SIGHUP, reload)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    os.close(1)
    heap: list[tuple[float, int, bytes]] = []
    seq = 0
    rng = random.Random()
    while True:
        timeout = max(0.0, heap[0][0] - time.monotonic()) if heap else None
        try:
            readable, _, _ = select.select([near, far], [], [], timeout)
        except InterruptedError:
            continue
        try:
            for fd in readable:
                packet = os.read(fd, 65535)
                if fd == near:
                    os.write(far, packet)
                else:
                    delay = params["delay_ms"] + rng.uniform(-params["jitter_ms"], params["jitter_ms"])
                    if delay <= 0 and not heap:
                        os.write(near, packet)
                    else:
                        seq += 1
                        heapq.heappush(heap, (time.monotonic() + delay / 1000.0, seq, packet))
            now = time.monotonic()
            while heap and heap[0][0] <= now:
                os.write(near, heapq.heappop(heap)[2])
        except OSError as exc:
            if exc.errno in (errno.EIO, errno.EBADFD, errno.ENODEV, errno.EINVAL, errno.EFAULT):
                return
            if exc.errno in (errno.EAGAIN, errno.ENOBUFS):
                continue
            raise
