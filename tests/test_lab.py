"""The namespace lab, driven as a user drives it: `recon lab up/status/exec/down`."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import NOBODY, ROOT, _namespaces, need_lab, need_tool, recon as _recon



def recon(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return _recon(*args, timeout=120, env={**os.environ, **env})


@pytest.mark.lab
def test_lab_cli_lifecycle(tmp_path) -> None:
    """up builds it (idempotently), exec runs inside it, status shows it, down leaves no namespace."""
    need_lab()
    need_tool("ping")
    env = {"RECON_LAB_DIR": str(tmp_path)}
    before = _namespaces()
    try:
        up = recon("lab", "up", env=env)
        assert up.returncode == 0, up.stderr
        name = (tmp_path / "current").read_text().strip()
        assert {f"{name}-scan", f"{name}-rtr", f"{name}-phone"} <= _namespaces()
        again = recon("lab", "up", env=env)
        assert again.returncode == 0 and "already up" in again.stderr
        assert (tmp_path / "current").read_text().strip() == name
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
    """Delay on the wan link shows in the RTT; 100 % loss silences the LAN."""
    need_tool("ping")
    with lab.impaired(delay_ms=40):
        res = lab.run(["ping", "-c3", "-i0.2", "-W2", "198.18.5.7"])
        avg = float(res.stdout.strip().splitlines()[-1].split("=")[1].split("/")[1])
        assert 39 <= avg <= 45, res.stdout
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
