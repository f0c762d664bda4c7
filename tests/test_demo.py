"""`recon demo`: the README's first command, run as a user runs it."""

from __future__ import annotations

import pytest

import subprocess
import sys

from tests.conftest import ROOT, _namespaces, need_lab, need_tool


@pytest.mark.lab
def test_demo_runs_everything_and_leaves_a_valid_pcap(tmp_path) -> None:
    """The demo sweeps, pings, crafts and sniffs in a fresh lab, saves a pcap tshark reads, and removes the lab."""
    need_lab()
    tshark = need_tool("tshark")
    pcap = tmp_path / "demo.pcap"
    before = _namespaces()
    res = subprocess.run([sys.executable, "-m", "recon", "demo", "--pcap", str(pcap)], capture_output=True,
                         text=True, cwd=ROOT, timeout=180)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "3c:22:fb:12:34:56" in out and "Apple" in out  # ARP sweep with vendor
    assert "16 hosts up of 256" in res.stdout + res.stderr
    assert "Time to live exceeded" in out and "unreachable" in out
    assert "3 packets transmitted, 3 received" in out
    assert "src 198.18.0.11, dst 198.18.0.10" in out  # the spoofed packet, decoded from the capture
    assert "torn down" in res.stderr
    assert _namespaces() == before
    frames = subprocess.run([tshark, "-r", str(pcap), "-T", "fields", "-e", "ip.src"], capture_output=True, text=True)
    assert frames.returncode == 0 and "198.18.0.11" in frames.stdout.split()
    assert len(frames.stdout.splitlines()) > 300  # sweeps of a /24 and more, with replies
