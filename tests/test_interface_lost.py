"""An interface that goes away in the middle of a sweep (issue 14 item 11, which tcpdump handles cleanly):
one line and exit 3, not an OSError traceback from a send or a receive. In the lab's scanner namespace,
on a veth pair made for the test and deleted once the sweep is seen sending on it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def _veth(lab, name: str) -> Iterator[str]:
    """``name`` (198.18.9.1/24, up) and its peer in the scanner namespace for the block; gone afterwards."""
    ip = ["ip", "-n", lab.ns]
    subprocess.run([*ip, "link", "add", name, "type", "veth", "peer", "name", name + "p"], check=True)
    try:
        subprocess.run([*ip, "addr", "add", "198.18.9.1/24", "dev", name], check=True)
        subprocess.run([*ip, "link", "set", name, "up"], check=True)
        subprocess.run([*ip, "link", "set", name + "p", "up"], check=True)
        yield name
    finally:
        subprocess.run([*ip, "link", "del", name], capture_output=True)


@pytest.mark.parametrize("how", [["--method", "icmp", "-I"], ["--method", "arp", "-I"]], ids=["icmp", "arp"])
def test_an_interface_deleted_mid_sweep_is_one_line_exit_3(lab, tmp_path: Path, how: list[str]) -> None:
    with _veth(lab, "rtlost0") as dev, lab.capture(lab.ns, "icmp or arp", tmp_path / "peer.pcap", iface=dev + "p") as wire:
        proc = lab.popen([sys.executable, "-m", "recon", "sweep", "198.18.9.0/24", "--probe", "echo", "--rate", "50",
                          *how, dev], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            wire.wait_for(lambda frames: len(frames) > 0 or proc.poll() is not None)  # the sweep is sending on it
            subprocess.run(["ip", "-n", lab.ns, "link", "del", dev], check=True)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 3, err
    assert err.count("\n") == 1 and "Traceback" not in err and "went away or down" in err, err
    assert out == ""
