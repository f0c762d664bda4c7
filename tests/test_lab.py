"""The namespace lab, driven as a user drives it: `recon lab up/status/exec/down`."""

from __future__ import annotations

import ipaddress
import itertools
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from recon.lab import Lab
from tests.conftest import NOBODY, ROOT, _namespaces, need_lab, need_tool, run_cli
from tests.conftest import recon as _recon


def recon(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return _recon(*args, timeout=120, env={**os.environ, **env})


AS_ROOT = {"SUDO_UID": "", "RECON_LAB": ""}  # root itself, whoever started the test run, no session lab


def _current(lab_dir: Path, uid: int = 0) -> str:
    """The name in user ``uid``'s current-lab pointer."""
    return (lab_dir / f"current-{uid}").read_text().strip()


@pytest.mark.lab
def test_lab_cli_lifecycle(tmp_path) -> None:
    """up builds it (idempotently), exec runs inside it, status shows it, down leaves no namespace."""
    need_lab()
    need_tool("ping")
    env = {"RECON_LAB_DIR": str(tmp_path), **AS_ROOT}
    before = _namespaces()
    try:
        up = recon("lab", "up", env=env)
        assert up.returncode == 0, up.stderr
        name = _current(tmp_path)  # the current lab is per user now (issue 13), not one machine-wide file
        assert {f"{name}-scan", f"{name}-rtr", f"{name}-phone"} <= _namespaces()
        again = recon("lab", "up", env=env)
        assert again.returncode == 0 and "already up" in again.stderr
        assert _current(tmp_path) == name
        ping = recon("lab", "exec", "--", "ping", "-c1", "-W2", "198.18.0.10", env=env)
        assert ping.returncode == 0 and "1 received" in ping.stdout, ping.stdout + ping.stderr
        status = recon("lab", "status", env=env)
        assert "198.18.0.10" in status.stdout and "3c:22:fb:12:34:56" in status.stdout
        routes = recon("lab", "exec", "--", "ip", "route", env=env)
        assert "default" not in routes.stdout
    finally:
        down = recon("lab", "down", env=env)
    assert down.returncode == 0
    assert _namespaces() == before


def test_lab_never_touches_the_root_namespace(lab) -> None:
    """The root namespace's links, addresses and routes are the same with the lab up."""
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    addrs = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
    assert "198.18." not in addrs and "p-scan" not in links and "br0" not in links


def test_lab_truth_matches_the_wire(lab) -> None:
    """The fixture's truth is real: an up address answers, a dead one in the same range does not."""
    need_tool("ping")
    sparse = lab.info.range("sparse24")
    alive = sparse.up[0]
    dead = next(f"198.18.1.{i}" for i in range(1, 255) if f"198.18.1.{i}" not in sparse.up)
    assert lab.run(["ping", "-c1", "-W2", alive]).returncode == 0
    assert lab.run(["ping", "-c1", "-W1", dead]).returncode != 0
    assert lab.run(["ping", "-c1", "-W2", "198.19.77.3"]).returncode == 0
    unreach = lab.run(["ping", "-c1", "-W2", "198.18.3.9"])
    assert "Unreachable" in unreach.stdout


def test_lab_names_resolve_inside_and_dns_stays_inside(lab) -> None:
    """Lab names resolve in the scanner namespace; an unknown name fails at once (DNS to 127.0.0.1)."""
    ok = lab.run(["getent", "ahostsv4", "printer.lab"])
    assert "198.18.0.12" in ok.stdout
    bad = lab.run(["getent", "hosts", "no-such-host.invalid"], timeout=10)
    assert bad.returncode != 0


def test_impairments(lab) -> None:
    """Delay on the wan link shows in the RTT; 100 % loss silences the LAN.

    The relay (recon/labrelay.py) holds each packet 40 ms, then forwards it when it next runs, which a loaded
    machine delays: 40 ms is a floor, and the fastest of the replies, the one the scheduler touched least,
    stays under 60 ms, where a delay applied twice (80 ms) or not at all (well under 1 ms) would not."""
    need_tool("ping")
    with lab.impaired(delay_ms=40):
        res = lab.run(["ping", "-c3", "-i0.2", "-W2", "198.18.5.7"])
        fastest = float(res.stdout.strip().splitlines()[-1].split("=")[1].split("/")[0])
        assert 39.9 <= fastest < 60, res.stdout
    with lab.impaired(loss=100):
        assert lab.run(["ping", "-c2", "-i0.2", "-W1", "198.18.0.11"]).returncode != 0
    assert lab.run(["ping", "-c1", "-W2", "198.18.0.11"]).returncode == 0


@pytest.mark.lab
def test_lab_refuses_without_root(tmp_path) -> None:
    """Without root, `recon lab up` refuses with advice and exit 3, building nothing."""
    need_lab()
    before = _namespaces()
    res = subprocess.run([*NOBODY, sys.executable, "-m", "recon", "lab", "up"], capture_output=True, text=True,
                         cwd=ROOT, env={**os.environ, "RECON_LAB_DIR": str(tmp_path)})
    assert res.returncode == 3 and "needs root" in res.stderr and "sudo" in res.stderr
    assert _namespaces() == before


@pytest.mark.lab
def test_raw_socket_refusal_gives_advice() -> None:
    """A process without CAP_NET_RAW gets PrivilegeError advice (sudo, setcap, ping_group_range)."""
    need_lab()
    code = ("from recon.transport import require_raw\n"
            "from recon.errors import PrivilegeError\n"
            "try:\n    require_raw('sweep')\nexcept PrivilegeError as e:\n    print(e.exit_status, e)\n")
    res = subprocess.run([*NOBODY, sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert res.stdout.startswith("3 ") and "setcap cap_net_raw+ep" in res.stdout and "sudo" in res.stdout


def test_switch_is_plain(lab) -> None:
    """The lab's bridge does not run bridged IPv4 through netfilter (it must forward malformed headers)."""
    res = lab.run(["sysctl", "-n", "net.bridge.bridge-nf-call-iptables"], ns=lab.info.switch_ns)
    assert res.stdout.strip() in ("0", "")


# --- the lab's truth, checked on the wire with standard tools (nmap, ping, sockets) --------------

# nmap tuned for the lab: no loss and sub-millisecond RTTs, so one retry at 5000 pps is exact (and 10x faster)
NMAP_FAST = ["-n", "-sn", "--min-rate", "5000", "--max-retries", "1",
             "--max-rtt-timeout", "100ms", "--initial-rtt-timeout", "50ms", "-oG", "-"]
CLOSED_UDP = "40125"  # no service listens there anywhere in the lab


def nmap_up(lab, *args: str, targets: list[str] | str) -> set[str]:
    """The addresses nmap (run inside the scanner namespace) reports up."""
    need_tool("nmap")
    res = lab.run(["nmap", *NMAP_FAST, *args, *([targets] if isinstance(targets, str) else targets)], timeout=120)
    assert res.returncode == 0, res.stderr
    return set(re.findall(r"^Host: (\S+) \(\)\s+Status: Up", res.stdout, re.M))


def test_noecho_range_answers_timestamp_and_tcp_not_echo(lab) -> None:
    """198.18.6.0/24: its hosts drop echo, yet nmap -PP and -PS443 -PA80 find exactly them."""
    r = lab.info.range("noecho24")
    assert r.cidr == "198.18.6.0/24" and len(r.up) == 16 and "echo" not in r.answers
    assert nmap_up(lab, "-PE", targets=r.cidr) == set()
    assert nmap_up(lab, "-PP", targets=r.cidr) == set(r.up)
    assert nmap_up(lab, "-PS443", "-PA80", targets=r.cidr) == set(r.up)
    assert nmap_up(lab, f"-PU{CLOSED_UDP}", targets=r.cidr) == set(r.up)  # port unreachable from the host itself


def test_noicmp_range_answers_only_tcp(lab) -> None:
    """198.18.7.0/24: no ICMP in or out; nmap -PS443 -PA80 finds exactly its hosts, -PU53 exactly the UDP responders."""
    r = lab.info.range("noicmp24")
    assert r.cidr == "198.18.7.0/24" and len(r.up) == 16 and r.answers == ("tcp-rst",)
    tcp = {s.address for s in r.services if (s.proto, s.port) == ("tcp", 443)}
    udp = {s.address for s in r.services if (s.proto, s.port) == ("udp", 53)}
    assert tcp and udp and tcp | udp <= set(r.up)
    assert nmap_up(lab, "-PE", "-PP", targets=r.cidr) == set()
    assert nmap_up(lab, "-PS443", "-PA80", targets=r.cidr) == set(r.up)
    assert nmap_up(lab, "-PU53", targets=r.cidr) == udp
    assert nmap_up(lab, f"-PU{CLOSED_UDP}", targets=r.cidr) == set()  # the port unreachable never leaves
    closed = next(a for a in r.up if a not in tcp)
    why = lab.run(["nmap", "-n", "-sn", "-PS443", "--reason", sorted(tcp)[0], closed]).stdout
    assert re.search(rf"{re.escape(sorted(tcp)[0])}\nHost is up, received syn-ack", why), why
    assert re.search(rf"{re.escape(closed)}\nHost is up, received reset", why), why


SOCKETS = """
import socket, sys
listener, closed = sys.argv[1:3]
with socket.create_connection((listener, 443), timeout=3):
    print("connected")
try:
    socket.create_connection((closed, 443), timeout=3)
except ConnectionRefusedError:
    print("refused")
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(3)
u.sendto(b"recon-lab-probe", (listener, 53))
print(u.recvfrom(100)[0].decode())
"""


def test_noicmp_services_answer_sockets(lab) -> None:
    """A plain TCP connect and a UDP datagram from the scanner reach the services; a closed port is refused (RST)."""
    r = lab.info.range("noicmp24")
    listener = next(s.address for s in r.services if s.proto == "tcp")
    closed = next(a for a in r.up if a not in {s.address for s in r.services})
    res = lab.run([sys.executable, "-c", SOCKETS, listener, closed], timeout=30)
    assert res.stdout.split() == ["connected", "refused", "recon-lab-probe"], res.stdout + res.stderr


def test_ipv6_ranges_match_nmap(lab) -> None:
    """nmap -6 -sn from the scanner finds exactly the sparse IPv6 range's /128s, and all of the dense one."""
    sparse, dense, anyip = lab.info.range("sparse6"), lab.info.range("dense6"), lab.info.range("anyip6")
    assert (sparse.family, dense.family, anyip.family) == (6, 6, 6) and len(sparse.up) == 7 and dense.up is None
    assert nmap_up(lab, "-6", targets=sparse.cidr) == set(sparse.up)
    assert nmap_up(lab, "-6", targets=dense.cidr) == {str(a) for a in ipaddress.ip_network(dense.cidr)}
    assert nmap_up(lab, "-6", "-PE", targets=["2001:db8:2::1", "2001:db8:2::beef:7"]) == {"2001:db8:2::1", "2001:db8:2::beef:7"}


def _samples(r) -> list[str]:
    if r.up is not None:
        return list(r.up[:2])
    return [str(a) for a in itertools.islice(ipaddress.ip_network(r.cidr).hosts(), 2)]


# what each word of LabRange.answers means, as nmap probes it (each list must find the host)
PROBES = {"echo": [["-PE"]], "timestamp": [["-PP"]], "tcp-rst": [["-PS1"], ["-PA80"]], "udp-unreach": [[f"-PU{CLOSED_UDP}"]]}


@pytest.mark.parametrize("family", [4, 6])
def test_routed_ranges_answer_exactly_what_they_claim(lab, family: int) -> None:
    """For every routed range, live addresses answer each probe in ``answers`` and no other probe."""
    ranges = [r for r in lab.info.ranges if r.family == family and not r.on_link]
    samples = {r.name: _samples(r) for r in ranges}
    every = sorted({a for s in samples.values() for a in s})
    for kind, variants in PROBES.items():
        if family == 6 and kind == "timestamp":
            assert not any(kind in r.answers for r in ranges)
            continue
        expected = {a for r in ranges if kind in r.answers for a in samples[r.name]}
        for flags in variants:
            found = nmap_up(lab, *(["-6"] if family == 6 else []), *flags, targets=every)
            assert found == expected, (kind, flags, sorted(found ^ expected))


def test_lan_ipv6_neighbours(lab) -> None:
    """On the scanner's link, each LAN host and the router answer NS (nmap's nd-response, with their MACs)
    and one multicast echo to ff02::1 each; nothing else on the link answers (the switch has no address)."""
    need_tool("ping")
    info = lab.info
    lan6, ll = info.range("lan6"), info.range("lan6ll")
    assert lan6.on_link == ll.on_link == info.scanner_if
    assert set(ll.up) == {h.ipv6_ll for h in info.hosts} | {info.router_ipv6_ll}
    res = lab.run(["ping", "-6", "-c", "3", "-i", "0.3", "-W", "1", f"ff02::1%{info.scanner_if}"], timeout=30)
    sources = re.findall(r"bytes from ([0-9a-f:]+)%\S+ icmp_seq=1 ", res.stdout)
    assert sorted(sources) == sorted([*ll.up, info.scanner_ipv6_ll]), res.stdout  # one reply each to the first echo
    need_tool("nmap")
    out = lab.run(["nmap", "-6", "-n", "-sn", "--reason", "2001:db8::/123"], timeout=60).stdout
    found = dict(re.findall(r"Nmap scan report for (\S+)\nHost is up, received nd-response.*\nMAC Address: (\S+)", out))
    macs = {h.ipv6: h.mac for h in info.hosts} | {info.router_ipv6: info.router_mac, info.router_anycast6: info.router_mac}
    assert {a: m.lower() for a, m in found.items()} == macs, out
    assert set(lan6.up) == set(macs) - {info.router_anycast6}
    for flag in ("-PE", "-PS1"):  # echo and TCP RST, with nmap's ND ping turned off
        assert nmap_up(lab, "-6", flag, "--disable-arp-ping", targets=list(lan6.up)) == set(lan6.up)
    for h in info.hosts:  # the link-local address answers echo, after neighbour discovery
        assert lab.run(["ping", "-6", "-c1", "-W2", f"{h.ipv6_ll}%{info.scanner_if}"]).returncode == 0


# --- who may act on which lab (issue 13 items 2 and 3, issue 14 item 12) ---------------------------


@pytest.mark.lab
def test_lab_down_leaves_another_users_lab_alone(tmp_path) -> None:
    """The current lab is per user: root's `lab down` does not see the lab uid 4242 made with sudo, and
    pointed at it ($RECON_LAB) refuses with exit 2 and a one-line hint; its owner removes it."""
    need_lab()
    theirs = {"RECON_LAB_DIR": str(tmp_path), "SUDO_UID": "4242", "RECON_LAB": ""}
    mine = {"RECON_LAB_DIR": str(tmp_path), **AS_ROOT}
    before = _namespaces()
    name = ""
    try:
        assert recon("lab", "up", env=theirs).returncode == 0
        name = _current(tmp_path, 4242)
        assert not (tmp_path / "current-0").exists()
        mine_down = recon("lab", "down", env=mine)
        assert mine_down.returncode == 0 and name not in mine_down.stderr
        assert f"{name}-scan" in _namespaces()
        refused = recon("lab", "down", env={**mine, "RECON_LAB": name})
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
        assert "uid 4242" in refused.stderr and f"recon lab down --name {name}" in refused.stderr
        assert f"{name}-scan" in _namespaces()
        assert name in recon("lab", "status", env=theirs).stdout
        assert recon("lab", "down", env=theirs).returncode == 0
        assert f"{name}-scan" not in _namespaces()
    finally:
        if name:
            recon("lab", "down", "--name", name, env=mine)
    assert _namespaces() == before


def test_lab_exec_finds_the_venvs_recon(lab) -> None:
    """`recon lab exec -- recon ...` works when recon lives in a venv that is not on PATH (as under sudo)."""
    bindir = Path(sys.executable).parent
    if not (bindir / "recon").exists():
        pytest.skip(f"recon is not installed in {bindir}")
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    where = recon("lab", "exec", "--name", lab.info.name, "--", "sh", "-c", "command -v recon", env=env)
    assert where.stdout.strip() == str(bindir / "recon"), where.stdout + where.stderr
    res = recon("lab", "exec", "--name", lab.info.name, "--", "recon", "sweep", "198.18.0.10", "--json", env=env)
    assert res.returncode == 0 and '"198.18.0.10"' in res.stdout, res.stdout + res.stderr


def test_unprivileged_lab_commands_fail_cleanly(lab) -> None:
    """Without root, lab down/up/exec say so in one line and exit 3 (no PermissionError traceback),
    even when the lab's state is readable; the lab stays up."""
    need_tool("setpriv")
    state = Path(tempfile.mkdtemp(prefix="recon-lab-nobody-"))
    try:
        state.chmod(0o755)
        (state / f"{lab.info.name}.json").write_text(lab.lab.state_file.read_text())
        (state / f"{lab.info.name}.json").chmod(0o644)
        env = {**os.environ, "RECON_LAB_DIR": str(state), "RECON_LAB": ""}
        for args in (["down", "--name", lab.info.name], ["down"], ["exec", "--name", lab.info.name, "--", "true"],
                     ["up", "--name", lab.info.name]):
            res = subprocess.run([*NOBODY, sys.executable, "-m", "recon", "lab", *args], capture_output=True, text=True,
                                 cwd=ROOT, env=env, timeout=60)
            assert res.returncode == 3, (args, res.stderr)
            assert res.stderr.count("\n") == 1 and res.stderr.startswith("recon: error:"), (args, res.stderr)
            assert "needs root" in res.stderr and "sudo" in res.stderr and "Traceback" not in res.stderr
    finally:
        subprocess.run(["rm", "-rf", str(state)])
    assert lab.info.scanner_ns in _namespaces() and lab.lab.is_up()


@pytest.mark.lab
def test_relay_ends_when_its_lab_is_deleted_behind_its_back(tmp_path, monkeypatch) -> None:
    """A lab removed with a bare `ip netns del` (as the leak check does) takes its helper process with it;
    before, the process kept the namespaces alive and ran forever."""
    need_lab()
    monkeypatch.setenv("RECON_LAB_DIR", str(tmp_path))
    the_lab = Lab()
    try:
        pid = the_lab.up().relay_pid
        assert pid and Path(f"/proc/{pid}").exists()
        gone = [n for n in _namespaces() if n.startswith(the_lab.name + "-")]
        subprocess.run(["ip", "-batch", "-"], input="".join(f"netns del {n}\n" for n in gone), text=True, check=True)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and _state(pid) != "Z" and time.monotonic() < deadline:
            time.sleep(0.1)  # polling /proc: a process that is not our child gives no exit signal
        assert not Path(f"/proc/{pid}").exists() or _state(pid) == "Z"
    finally:
        the_lab.down()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


@pytest.mark.parametrize("name", ["\u0661\u0662\u0663", "\ufb00", "lab\u202e", "a b", "x" * 25])
def test_a_lab_name_is_ascii_letters_digits_and_dashes(name: str) -> None:
    """Lab names become namespace names that `ip netns list` prints: Arabic-Indic digits, ligatures or a bidi
    override are refused with the other bad names (str.isalnum took the first two), before anything is looked up."""
    res = run_cli("lab", "status", "--name", name)
    assert res.code == 2 and "invalid lab name" in res.stderr and "ASCII" in res.stderr, res.stderr
