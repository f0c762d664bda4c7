"""Hostile capture files and output paths (issue 14): one clean error, never a torn file or a crash."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from recon.capture import PcapWriter
from tests.conftest import CAPTURES, ROOT
from tests.test_decode import ether, ipv4


def recon(*args: str, timeout: float = 60, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "recon", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, **kw)  # type: ignore[call-overload]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def big_capture(path: Path, frames: int = 4000) -> Path:
    """A pcap of ``frames`` 1000-byte frames (about 4 MB: several of the reader's 1 MiB reads)."""
    with PcapWriter(path, 1) as w:
        for i in range(frames):
            w.write(ether(ipv4(b"\x08\x00\x00\x00" + i.to_bytes(4, "big") + bytes(958))), 1_700_000_000_000_000_000 + i)
    return path


# --- reading and writing the same file (issue 14, high 1) ------------------------------------------


@pytest.mark.parametrize("how", ["same", "dot", "symlink", "hardlink", "stdin"])
def test_reading_and_writing_the_same_file_is_refused(tmp_path: Path, how: str) -> None:
    """`sniff -r F -w F`, by any name of F (./F, a symlink, a hard link, stdin): exit 2, one line, F untouched."""
    src = tmp_path / "in.pcap"
    src.write_bytes((CAPTURES / "ping-errors.pcap").read_bytes())
    before = digest(src)
    out = {"same": src, "dot": Path(tmp_path, ".", "in.pcap"), "symlink": tmp_path / "link.pcap",
           "hardlink": tmp_path / "hard.pcap", "stdin": src}[how]
    if how == "symlink":
        out.symlink_to(src)
    elif how == "hardlink":
        os.link(src, out)
    if how == "stdin":
        with open(src, "rb") as stdin:
            res = recon("sniff", "-r", "-", "-w", str(out), stdin=stdin)
    else:
        res = recon("sniff", "-r", str(src), "-w", str(out))
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert len(res.stderr.splitlines()) == 1 and "-w" in res.stderr and "Traceback" not in res.stderr
    assert res.stdout == ""
    assert digest(src) == before


def test_a_capture_truncated_while_it_is_read_is_a_truncated_capture(tmp_path: Path) -> None:
    """Another process truncating the file being read gives the frames read so far and a CaptureError, not SIGBUS."""
    src = big_capture(tmp_path / "big.pcap")
    code = (
        "import os, sys\n"
        "from recon.capture import read_frames\n"
        "from recon.errors import CaptureError\n"
        "frames = read_frames(sys.argv[1])\n"
        "next(frames)\n"
        "os.truncate(sys.argv[1], 5000)\n"
        "n = 1\n"
        "try:\n"
        "    for _ in frames:\n"
        "        n += 1\n"
        "except CaptureError as exc:\n"
        "    print(n, 'CaptureError', exc)\n"
    )
    res = subprocess.run([sys.executable, "-c", code, str(src)], capture_output=True, text=True, cwd=ROOT, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 0, (res.returncode, res.stderr)
    count, kind, message = res.stdout.split(" ", 2)
    assert kind == "CaptureError" and "truncated" in message
    assert 1 <= int(count) < 4000
