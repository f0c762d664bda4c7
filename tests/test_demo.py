"""`recon demo`: the README's first command, run as a user runs it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, _namespaces, need_lab, need_tool, run_cli


def _inputs() -> dict[str, tuple[int, int]]:
    """Every file the test suite reads (captures/, tests/): path -> (size, mtime)."""
    return {str(p.relative_to(ROOT)): (p.stat().st_size, p.stat().st_mtime_ns)
            for d in ("captures", "tests") for p in sorted((ROOT / d).rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts and ".hypothesis" not in p.parts}


@pytest.mark.lab
def test_demo_runs_everything_and_leaves_a_valid_pcap(tmp_path: Path) -> None:
    """The README's `recon demo`, from the repository root with no options: it sweeps, pings, crafts and
    sniffs in a fresh lab, saves ./recon-demo.pcap (which tshark reads), removes the lab, and leaves the
    test suite's inputs as they were, so `bash .ci/run` right after it still passes (issue 13)."""
    need_lab()
    tshark = need_tool("tshark")
    default = ROOT / "recon-demo.pcap"
    saved = tmp_path / "users-own.pcap"
    if default.exists():  # someone's earlier demo run: keep it
        shutil.move(default, saved)
    before, inputs = _namespaces(), _inputs()
    try:
        res = subprocess.run([sys.executable, "-m", "recon", "demo"], capture_output=True, text=True, cwd=ROOT, timeout=180)
        pcap = tmp_path / "demo.pcap"
        if default.exists():
            shutil.move(default, pcap)
    finally:
        if saved.exists():
            shutil.move(saved, default)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "3c:22:fb:12:34:56" in out and "Apple" in out  # ARP sweep with vendor
    assert "16 hosts up of 256" in res.stdout + res.stderr
    assert "Time to live exceeded" in out and "unreachable" in out
    assert "3 packets transmitted, 3 received" in out
    assert "src 198.18.0.11, dst 198.18.0.10" in out  # the spoofed packet, decoded from the capture
    assert "torn down" in res.stderr and "traffic saved in recon-demo.pcap" in res.stderr
    assert _namespaces() == before
    assert _inputs() == inputs  # nothing new or changed under captures/ or tests/
    frames = subprocess.run([tshark, "-r", str(pcap), "-T", "fields", "-e", "ip.src"], capture_output=True, text=True)
    assert frames.returncode == 0 and "198.18.0.11" in frames.stdout.split()
    assert len(frames.stdout.splitlines()) > 300  # sweeps of a /24 and more, with replies
    after = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_decode.py", "-k",
                            "captures_cover"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert after.returncode == 0, after.stdout[-2000:]


def test_demo_refuses_an_unwritable_output_before_building_the_lab(tmp_path: Path) -> None:
    """-w/--pcap/--write name one option; a directory that cannot be made is exit 2, no lab built."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    before = _namespaces()
    for flag in ("-w", "--write", "--pcap"):
        res = run_cli("demo", flag, str(blocker / "sub" / "x.pcap"))
        assert res.returncode == 2 and "with a writable path" in res.stderr, res.stderr
    assert _namespaces() == before
