"""Hostile capture files and output paths (issue 14): one clean error, never a torn file or a crash."""

from __future__ import annotations

import hashlib
import os
import resource
import select
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from recon.errors import ReconEnvironmentError
from recon.pcap import PcapWriter, read_frames
from tests.conftest import CAPTURES, ROOT, need_lab, need_tool, recon, small_tmpfs
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
        "from recon.pcap import read_frames\n"
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
    with small_tmpfs(tmp_path / "small", "64k") as mnt:
        yield mnt


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


# --- memory, streams and timestamps (issue 14, medium 4 and 5) ------------------------------------


def pcap_bytes(records: list[tuple[int, int, bytes]], *, snaplen: int = 65535, linktype: int = 101, magic: int = 0xA1B2C3D4) -> bytes:
    """A microsecond pcap (raw IP by default) of (seconds, fraction, frame) records, written byte by byte."""
    out = struct.pack("<IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)
    for sec, frac, data in records:
        out += struct.pack("<IIII", sec, frac, len(data), len(data)) + data
    return out


def pcapng_bytes(ts: int, data: bytes, tsresol: int) -> bytes:
    """A pcapng: section header, one raw-IP interface with if_tsresol, one enhanced packet block at ``ts``."""
    def block(btype: int, body: bytes) -> bytes:
        body += bytes(-len(body) % 4)
        return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)
    shb = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb = block(1, struct.pack("<HHI", 101, 0, 65535) + struct.pack("<HHB3x", 9, 1, tsresol) + bytes(4))
    epb = block(6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(data), len(data)) + data)
    return shb + idb + epb


def test_a_record_larger_than_256_kib_is_damage(tmp_path: Path) -> None:
    """A header claiming a 64 MiB snaplen is not honoured: a record up to 256 KiB is read (as tshark does), a larger
    one is a corrupt record, reported after the good frames, without reading it into memory."""
    big = ipv4(bytes(262_144 - 20), total=65535)
    path = tmp_path / "huge.pcap"
    path.write_bytes(pcap_bytes([(1, 0, big), (2, 0, ipv4(bytes(300_000), total=65535))], snaplen=1 << 26))
    res = recon("sniff", "-r", str(path), "--hex")
    assert res.returncode == 2 and "corrupt record 2" in res.stderr and "262144" in res.stderr, res.stderr
    assert len(res.stderr.splitlines()) == 1 and res.stdout.splitlines()[0].count("198.18.0.2") == 1


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def test_reading_dev_zero_ends_at_once(tmp_path: Path) -> None:
    """`--read /dev/zero` is not a capture: one line, exit 2, at once (not a read until memory runs out)."""
    res = recon("sniff", "--read", "/dev/zero", timeout=30, preexec_fn=_cap_memory)
    assert res.returncode == 2 and "not a pcap or pcapng file" in res.stderr and len(res.stderr.splitlines()) == 1


def _line(proc: subprocess.Popen[bytes], timeout: float = 20) -> bytes:
    """One line of the process's output, or b'' if none comes within ``timeout`` seconds."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline() if ready else b""


@pytest.mark.parametrize("name", ["-", "/dev/stdin"])
def test_reading_standard_input_streams(name: str) -> None:
    """`tcpdump -w - | recon sniff -r -`: each packet is printed as it arrives, while the writer keeps the pipe open."""
    proc = subprocess.Popen([sys.executable, "-m", "recon", "sniff", "-r", name], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    assert proc.stdin is not None
    try:
        head, first, second = pcap_bytes([(1, 0, ipv4()), (2, 0, ipv4(proto=17, payload=bytes(8)))]).partition(ipv4())
        proc.stdin.write(head + first)
        proc.stdin.flush()
        assert b"198.18.0.2 \xe2\x86\x92 198.18.0.10 ICMP" in _line(proc)
        proc.stdin.write(second)
        proc.stdin.flush()
        assert b"UDP" in _line(proc)
        proc.stdin.close()
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
        proc.wait()


def _timestamp_files(tmp_path: Path) -> list[Path]:
    pcap, ng = tmp_path / "ts_overflow.pcap", tmp_path / "tsresol0.pcapng"
    pcap.write_bytes(pcap_bytes([(0xFFFFFFFF, 0xFFFFFFFF, ipv4()), (5, 0, ipv4())]))
    ng.write_bytes(pcapng_bytes((1 << 64) - 1, ipv4(), 0))
    return [pcap, ng]


def test_out_of_range_timestamps_are_clamped_and_reported(tmp_path: Path) -> None:
    """A timestamp beyond what pcap holds (µs overflow, pcapng if_tsresol=0 with a huge time) is clamped and named as
    a problem in every output mode, and -w records it: never struct.error or OverflowError."""
    for path in _timestamp_files(tmp_path):
        for mode in ([], ["-v"], ["--json"], ["--hex"], ["-w", str(tmp_path / "o.pcap")]):
            res = recon("sniff", "-r", str(path), *mode)
            assert res.returncode == 0 and "Traceback" not in res.stderr, (path.name, mode, res.stderr)
            assert "timestamp out of range" in res.stdout, (path.name, mode)
        assert tshark_count(tmp_path / "o.pcap") == len(list(read_frames(path)))


# --- options and output paths (issue 14, medium 6, 7, 8, 15) ---------------------------------------


def test_a_symlink_at_the_output_path_is_refused(tmp_path: Path) -> None:
    """A symlink planted at the -w path is refused with one line (exit 2); its target is never written."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    link = tmp_path / "out.pcap"
    link.symlink_to(victim)
    res = recon("sniff", "-r", str(CAPTURES / "ping-errors.pcap"), "-w", str(link))
    assert res.returncode == 2 and "symbolic link" in res.stderr and len(res.stderr.splitlines()) == 1, res.stderr
    assert victim.read_text() == "precious\n" and link.is_symlink()


@pytest.mark.parametrize("expr", ["-L", "--version", "-F/dev/null", "-dd"])
def test_a_filter_starting_with_a_dash_is_an_expression_not_options(expr: str) -> None:
    """`--filter=-L` and friends reach tcpdump after '--': they are (bad) expressions, never tcpdump options."""
    need_tool("tcpdump")
    res = recon("sniff", "-r", str(CAPTURES / "ping-errors.pcap"), f"--filter={expr}")
    assert res.returncode == 2 and "-f" in res.stderr and "not a valid BPF filter" in res.stderr, res.stderr
    assert res.stdout == "" and len(res.stderr.splitlines()) == 1


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e308", "2147483648", "0", "-1", "2678401"])
def test_timeout_outside_its_range_is_rejected(value: str) -> None:
    """--timeout takes 0 < S <= 31 days; anything else is one line naming the range, exit 2, before any socket."""
    res = recon("sniff", "--timeout", value, "-c", "1")
    assert res.returncode == 2 and "--timeout" in res.stderr and "31 days" in res.stderr, res.stderr
    assert len(res.stderr.splitlines()) == 1


@pytest.mark.parametrize("mode", [[], ["--json"], ["-v"]])
def test_a_closed_pipe_is_a_normal_end(tmp_path: Path, mode: list[str]) -> None:
    """`recon sniff -r F | head -1` exits 0, as if the output had completed, with no traceback."""
    src = big_capture(tmp_path / "big.pcap")
    proc = subprocess.Popen([sys.executable, "-m", "recon", "sniff", "-r", str(src), *mode], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=30) == 0 and "Traceback" not in err and "Error" not in err, err


# --- live capture (issue 14, medium 11) -------------------------------------------------------------


def test_live_capture_whose_interface_disappears_ends_with_one_line(lab, tmp_path: Path) -> None:
    """`sniff -i IF` when IF is deleted: the summary and one error line naming the interface, exit 3, no traceback;
    the -w file stays whole."""
    assert lab.run(["ip", "link", "add", "gone0", "type", "veth", "peer", "name", "gone1"]).returncode == 0
    lab.run(["ip", "link", "set", "gone0", "up"])
    out = tmp_path / "gone.pcap"
    proc = lab.popen([sys.executable, "-m", "recon", "sniff", "-i", "gone0", "-w", str(out)], stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while not out.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # the -w file appears once the socket is bound: the readiness signal
        assert out.exists(), proc.stderr.read() if proc.stderr else ""
    finally:
        lab.run(["ip", "link", "del", "gone0"])
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 3, err
    lines = err.splitlines()
    assert len(lines) == 2 and "gone0" in lines[1] and "went down or disappeared" in lines[1], err
    assert tshark_count(out) == 0
