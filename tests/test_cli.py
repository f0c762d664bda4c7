"""The CLI skeleton: help, version, errors as one line with the right exit code.

These run in-process through ``cli.run`` (``run_cli``); only what needs a fresh interpreter
spawns ``python -m recon``.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, offline_argv, recon_offline, run_cli, run_cli_offline

BAD_SPECS = ["300.1.1.1", "1.2.3.4-2", "10.0.0.0/33", "1.2.3", "", "10.0.0.1-", "1.2.3.4/24/1"]


def test_help_lists_every_command_with_an_example() -> None:
    """`recon --help` names each subcommand with one line of help and an example."""
    res = run_cli("--help")
    assert res.returncode == 0
    for cmd in ("sweep", "ping", "sniff", "craft", "watch", "lab", "demo"):
        line = next(ln for ln in res.stdout.splitlines() if ln.strip().startswith(cmd + " "))
        assert "recon" in line, line


def test_help_does_not_import_scapy() -> None:
    """`recon --help` stays fast because it never imports Scapy."""
    code = ("import sys; from recon.cli import run; run(['--help']); "
            "print('SCAPY' if any(m.startswith('scapy') for m in sys.modules) else 'CLEAN', file=sys.stderr)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert res.stderr.strip().endswith("CLEAN")


def test_the_cli_leaves_scapys_mac_vendor_table_out_and_a_library_caller_keeps_it(tmp_path: Path) -> None:
    """When the CLI owns the process, Scapy's data caches come from recon's own cache folder, where the MAC vendor
    table is empty (loading and freeing the whole one was ~0.1 s of every run); the first run learns the manuf
    file's path from a full load. A library caller's Scapy keeps the whole table, and recon's own vendor lookup
    (arp.vendor, which reads the manuf file) answers the same either way."""
    code = ("import sys; from recon import scapyload\n"
            "if sys.argv[1] == 'cli': scapyload.own_process()\n"
            "scapyload.inet(); import scapy.data; from recon.arp import vendor\n"
            "print(len(scapy.data.MANUFDB.d), vendor('00:00:0c:12:34:56'))")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    runs = [subprocess.run([sys.executable, "-c", code, who], capture_output=True, text=True, cwd=ROOT, env=env, check=True)
            .stdout.split(maxsplit=1) for who in ("cli", "cli", "cli", "library")]
    sizes, vendors = [int(size) for size, _ in runs], {name for _, name in runs}
    assert sizes[0] > 10_000 and sizes[1] == sizes[2] == 0 and sizes[3] == sizes[0]
    assert len(vendors) == 1 and "Cisco" in vendors.pop()
    assert (tmp_path / "recon" / "scapy" / "manufdb.pickle").is_file()


_EXIT_PROBE = """
import atexit, sys, threading, time
import recon.cli

class Torn:  # its __del__ runs only in Python's teardown of modules
    def __del__(self):
        sys.stderr.write("torn down\\n")

sys.modules[__name__].torn = Torn()
atexit.register(lambda: sys.stderr.write("atexit ran\\n"))
if sys.argv[1] == "thread":
    threading.Thread(target=lambda: (time.sleep(0.3), sys.stderr.write("thread done\\n"))).start()
recon.cli.main(sys.argv[2:])
"""


@pytest.mark.parametrize("argv, code", [(["--version"], 0), (["sweep", "--timeout", "x", "198.18.0.1"], 2)])
def test_the_cli_exits_without_module_teardown_but_runs_atexit_and_flushes(argv: list[str], code: int) -> None:
    """cli.exit_now: the exit status and everything printed come through, atexit handlers run, and Python's
    teardown of modules (40-70 ms of every run with Scapy loaded) is skipped."""
    res = subprocess.run([sys.executable, "-c", _EXIT_PROBE, "alone", *argv], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == code
    assert (res.stdout.startswith("recon ") if code == 0 else "--timeout" in res.stderr)
    assert "atexit ran" in res.stderr and "torn down" not in res.stderr


def test_the_cli_exit_waits_for_a_thread_still_running() -> None:
    """With another (non-daemon) thread alive, the ordinary exit: it waits for the thread, as Python does."""
    res = subprocess.run([sys.executable, "-c", _EXIT_PROBE, "thread", "--version"], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0 and res.stdout.startswith("recon ")
    assert res.stderr.index("thread done") < res.stderr.index("atexit ran")


def test_version() -> None:
    res = run_cli("--version")
    assert res.returncode == 0 and res.stdout.startswith("recon ")


@pytest.mark.parametrize("args", [("--version",), ("--help",), ("sweep", "1.2.3"), ("nope",),
                                  ("craft", "--dst", "198.18.0.10", "--src", "198.18.0.2", "--dry-run")])
def test_python_m_recon_prints_what_run_returns(args: tuple[str, ...]) -> None:
    """The entry point a user runs and the in-process runner the tests use agree, byte for byte.
    Both run in a network namespace of their own (the targets are lab addresses; --src: there is no route there)."""
    inproc, spawned = run_cli_offline(*args), recon_offline(*args)
    assert (spawned.returncode, spawned.stdout, spawned.stderr) == (inproc.code, inproc.stdout, inproc.stderr)


def test_run_writes_only_to_the_streams_it_is_given(capsys: pytest.CaptureFixture[str]) -> None:
    """cli.run(argv, stdout=, stderr=) leaves the process's own stdout and stderr untouched."""
    out, err = io.StringIO(), io.StringIO()
    from recon.cli import run
    from tests.conftest import offline

    with offline():  # the target is refused; were it not, nothing could leave
        assert run(["sweep", "1.2.3"], stdout=out, stderr=err) == 2
    assert run(["--help"], stdout=out, stderr=err) == 0
    assert "invalid target" in err.getvalue() and "Usage: recon" in out.getvalue()
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("spec", BAD_SPECS)
def test_bad_specs_exit_2_with_one_line(spec: str) -> None:
    """Every bad spec from the issue: exit 2, a single stderr line naming it, no traceback, nothing on stdout."""
    res = run_cli_offline("sweep", spec)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("recon: error: invalid target"), res.stderr
    assert repr(spec) in lines[0] and "Traceback" not in res.stderr and res.stdout == ""


def test_debug_shows_the_traceback() -> None:
    """--debug adds the traceback; the exit status stays 2."""
    res = run_cli_offline("--debug", "sweep", "1.2.3")
    assert res.returncode == 2 and "Traceback" in res.stderr and "InvalidTarget" in res.stderr


def test_usage_errors_are_one_line() -> None:
    """Unknown commands and options are usage errors: one line, exit 2."""
    for args in (["nope"], ["lab", "up", "--no-such-option"]):
        res = run_cli(*args)
        assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_unknown_lab_is_environment_error(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Using a lab that is not up is exit 3 with advice."""
    monkeypatch.setenv("RECON_LAB_DIR", str(tmp_path))
    monkeypatch.setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    res = run_cli("lab", "status")
    assert res.returncode == 3 and "recon lab up" in res.stderr


@pytest.mark.parametrize("flag", ["-w", "--write", "--pcap"])
def test_pcap_output_has_one_name_with_aliases(flag: str, tmp_path) -> None:
    """-w/--write/--pcap are one option in craft and sniff (tcpdump's -w), so each writes the same file."""
    from recon.pcap import read_frames
    from tests.conftest import CAPTURES

    craft = run_cli_offline("craft", "--dst", "198.18.0.10", "--src", "198.18.0.2", "--dry-run", flag, str(tmp_path / "c.pcap"))
    assert craft.returncode == 0, craft.stderr
    sniff = run_cli("sniff", "-r", str(CAPTURES / "ipv6.pcap"), "-c", "2", flag, str(tmp_path / "s.pcap"))
    assert sniff.returncode == 0, sniff.stderr
    assert len(list(read_frames(str(tmp_path / "c.pcap")))) == 1 and len(list(read_frames(str(tmp_path / "s.pcap")))) == 2


def test_sweep_and_ping_take_the_same_pcap_names() -> None:
    """sweep takes -w/--write/--pcap; ping takes --write/--pcap but leaves -w to iputils' deadline."""
    for flag in ("-w", "--write", "--pcap"):
        res = run_cli_offline("sweep", flag, "/nonexistent/x.pcap", "1.2.3")  # a bad target: nothing is sent
        assert res.returncode == 2 and "invalid target" in res.stderr, res.stderr
    ping_help = " ".join(run_cli("ping", "--help").stdout.split())
    assert "--write, --pcap" in ping_help or "--pcap, --write" in ping_help


def test_craft_dry_run_has_no_short_form() -> None:
    """-n means 'no DNS' in tcpdump, ping, fping and nmap, so craft's dry run is --dry-run only."""
    res = run_cli("craft", "--dst", "127.0.0.1", "-n")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1 and "-n" in res.stderr, res.stderr


# --- hostile argv and closed pipes (issue 14 item 12 and 15) --------------------------------------


def _with_closed_stdout(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    """Run ``argv`` with stdout a pipe whose reader is already gone, as after ``| head -1``."""
    import os

    r, w = os.pipe()
    os.close(r)
    try:
        return subprocess.run(argv, stdout=w, stderr=subprocess.PIPE, cwd=ROOT, timeout=timeout)
    finally:
        os.close(w)


@pytest.mark.parametrize("args", [["sniff", "-r", "captures/sweep.pcap"], ["sniff", "-r", "captures/sweep.pcap", "--json"],
                                  ["craft", "--dst", "127.0.0.1", "--src", "127.0.0.1", "--dry-run"], ["--help"],
                                  ["sweep", "--help"], ["--version"]])
def test_a_closed_stdout_is_a_normal_end(args: list[str]) -> None:
    """`recon ... | head -1`: the reader going away ends recon quietly with exit 0, as if the output had completed."""
    res = _with_closed_stdout([sys.executable, "-m", "recon", *args])
    assert res.returncode == 0 and b"Traceback" not in res.stderr and b"Exception ignored" not in res.stderr, res.stderr


def test_closed_stdout_in_the_lab_sweep_ping_sniff(lab) -> None:
    """sweep, ping and a live sniff reach the same end through the real commands in the lab."""
    base = ["ip", "netns", "exec", lab.ns, sys.executable, "-m", "recon"]
    for args in (["sweep", "--all", "198.18.0.8-15"], ["ping", "-c", "3", "-i", "0.2", "198.18.0.10"],
                 ["sniff", "-i", lab.info.scanner_if, "-c", "1", "--timeout", "5"]):
        res = _closed_stdout_with_traffic(lab, base + args) if args[0] == "sniff" else _with_closed_stdout(base + args)
        assert res.returncode == 0 and b"Traceback" not in res.stderr, (args, res.stderr)


def _closed_stdout_with_traffic(lab, argv: list[str]) -> subprocess.CompletedProcess[bytes]:
    """The same for a live capture, with pings from the scanner until it has something to print."""
    import os

    r, w = os.pipe()
    os.close(r)
    try:
        proc = subprocess.Popen(argv, stdout=w, stderr=subprocess.PIPE, cwd=ROOT)
        deadline = time.monotonic() + 5
        while proc.poll() is None and time.monotonic() < deadline:
            lab.run(["ping", "-c", "1", "-W", "0.2", "198.18.0.10"])
        _, err = proc.communicate(timeout=10)
        return subprocess.CompletedProcess(argv, proc.returncode, b"", err)
    finally:
        os.close(w)


@pytest.mark.parametrize("args", [["sweep", "-I", b"e\xffth0", "127.0.0.1"], ["ping", "-I", b"e\xffth0", "-c", "1", "127.0.0.1"],
                                  ["sniff", "-i", b"e\xffth0", "-c", "1"], ["sniff", "-i", "a" * 16, "-c", "1"],
                                  ["watch", "--once", "-I", b"e\xffth0", "127.0.0.1"],
                                  ["craft", "--dst", "127.0.0.1", "--dry-run", "--data", b"caf\xe9"]])
def test_non_utf8_interface_or_data_is_one_line_exit_2(args: list) -> None:
    """Bytes in argv that are not UTF-8 (or an impossible interface name): one line, exit 2, no traceback.
    The targets are loopback, and the commands stop at the option check."""
    res = subprocess.run([sys.executable, "-m", "recon", *args], capture_output=True, cwd=ROOT, timeout=60)
    lines = res.stderr.decode("utf-8", "replace").strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and lines[0].startswith("recon: error: invalid"), res.stderr
    assert b"Traceback" not in res.stderr and res.stdout == b""


@pytest.mark.parametrize(("option", "value"), [("--rate", "1e-10"), ("--rate", "inf"), ("--timeout", "inf"), ("--timeout", "1e308")])
def test_sweep_numeric_options_have_bounds(option: str, value: str) -> None:
    """A rate that would overflow the pacing arithmetic, or a wait that never ends on a silent target,
    is one line and exit 2 before any socket opens (issue: sweep --rate 1e-10, --timeout inf)."""
    res = run_cli("sweep", "127.0.0.1", "--probe", "echo", option, value)
    assert res.code == 2, res.stderr
    assert res.stderr.startswith(f"recon: error: invalid {option}") and res.stderr.count("\n") == 1


@pytest.mark.parametrize("args", [["--version"], ["sweep", "--help"], ["sniff", "-r", "captures/sweep.pcap"],
                                  ["sniff", "-r", "captures/sweep.pcap", "--json"],
                                  ["craft", "--dst", "127.0.0.1", "--src", "127.0.0.1", "--dry-run"]])
def test_stdout_on_a_full_disk_is_one_line_exit_3(args: list[str]) -> None:
    """`recon ... > file` on a full disk (/dev/full): one line and exit 3, as for the files recon writes itself
    (issue 14 item 3); it was an OSError traceback, or 'Exception ignored' at the interpreter's last flush."""
    with open("/dev/full", "w") as full:
        res = subprocess.run(offline_argv([sys.executable, "-m", "recon", *args]), stdout=full, stderr=subprocess.PIPE,
                             cwd=ROOT, timeout=60)
    err = res.stderr.decode()
    assert res.returncode == 3 and err.count("\n") == 1, err
    assert err.startswith("recon: error: cannot write the output: No space left on device") and "Traceback" not in err
