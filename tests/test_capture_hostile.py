"""Hostile capture files and output paths (issue 14): one clean error, never a torn file or a crash."""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from recon.capture import PcapWriter, read_frames
from recon.errors import ReconEnvironmentError
from tests.conftest import CAPTURES, ROOT, need_lab, need_tool, recon
from tests.test_decode import ether, ipv4



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


# --- a full disk (issue 14, high 3) ------------------------------------------------------------


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs mounted for this test only (root), unmounted afterwards whatever happens."""
    if os.geteuid() != 0:
        need_lab()  # skips without root; under CI=true a skip is a failure
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def tshark_count(path: Path) -> int:
    """Frames tshark reads from ``path``; fails if tshark finds a record cut short."""
    res = subprocess.run([need_tool("tshark"), "-r", str(path)], capture_output=True, text=True)
    assert res.returncode == 0 and "cut short" not in res.stderr, res.stderr
    return len(res.stdout.splitlines())


def assert_whole_records(path: Path, frames: int, record: int) -> None:
    """The pcap at ``path`` holds exactly ``frames`` whole records of ``record`` bytes after the header."""
    assert path.stat().st_size == 24 + frames * (16 + record)
    assert len(list(read_frames(path))) == frames == tshark_count(path)


@pytest.mark.lab
def test_sniff_w_on_a_full_disk_keeps_whole_records_and_says_so(tmp_path: Path, small_fs: Path) -> None:
    """`sniff -w` onto a full filesystem: exit 3, the summary, then one error line naming the file and the full
    disk; the file holds only whole records (tshark finds nothing cut short)."""
    src = big_capture(tmp_path / "big.pcap")
    out = small_fs / "out.pcap"
    res = recon("sniff", "-r", str(src), "-w", str(out))
    assert res.returncode == 3, res.stderr
    summary, error = res.stderr.splitlines()
    kept = int(summary.split()[0])
    assert f"recorded to {out}" in summary and 0 < kept < 4000
    assert error.startswith("recon: error:") and str(out) in error and "disk is full" in error
    assert len(res.stdout.splitlines()) == kept
    assert_whole_records(out, kept, 1000)


@pytest.mark.lab
def test_the_shared_pcap_writer_on_a_full_disk(small_fs: Path) -> None:
    """PcapWriter (sweep/ping/craft --pcap) on a full disk raises ReconEnvironmentError (exit 3) and leaves
    whole records only, whatever the record size."""
    out = small_fs / "w.pcap"
    frame = ether(ipv4(bytes(751)))
    writer = PcapWriter(out, 1)
    with pytest.raises(ReconEnvironmentError) as caught:
        for i in range(1000):
            writer.write(frame, i)
    assert caught.value.exit_status == 3 and "disk is full" in str(caught.value)
    writer.close()
    assert_whole_records(out, writer.count, len(frame))


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # then the kernel gives a short write, and EFBIG after it


def test_sniff_w_past_the_file_size_limit_cuts_back_to_whole_records(tmp_path: Path) -> None:
    """Unprivileged: under `ulimit -f`, writes come back short and then fail with EFBIG; the file keeps whole
    records, and recon exits 3 with the summary and one error line."""
    src = big_capture(tmp_path / "big.pcap")
    out = tmp_path / "out.pcap"
    res = recon("sniff", "-r", str(src), "-w", str(out), preexec_fn=_limit_file_size)
    assert res.returncode == 3, res.stderr
    summary, error = res.stderr.splitlines()
    assert "largest size" in error and str(out) in error
    assert_whole_records(out, int(summary.split()[0]), 1000)
