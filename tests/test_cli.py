"""The CLI skeleton: help, version, errors as one line with the right exit code."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT

BAD_SPECS = ["300.1.1.1", "1.2.3.4-2", "10.0.0.0/33", "1.2.3", "", "10.0.0.1-", "1.2.3.4/24/1"]


def recon(*args: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "recon", *args], capture_output=True, text=True, cwd=ROOT, timeout=60, **kw)


def test_help_lists_every_command_with_an_example() -> None:
    """`recon --help` names each subcommand with one line of help and an example."""
    res = recon("--help")
    assert res.returncode == 0
    for cmd in ("sweep", "ping", "sniff", "craft", "watch", "lab", "demo"):
        line = next(l for l in res.stdout.splitlines() if l.strip().startswith(cmd + " "))
        assert "recon" in line, line


def test_help_does_not_import_scapy() -> None:
    """`recon --help` stays fast because it never imports Scapy."""
    code = "import sys; from recon.cli import run; run(['--help']); print('SCAPY' if any(m.startswith('scapy') for m in sys.modules) else 'CLEAN', file=sys.stderr)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert res.stderr.strip().endswith("CLEAN")


def test_version() -> None:
    res = recon("--version")
    assert res.returncode == 0 and res.stdout.startswith("recon ")


@pytest.mark.parametrize("spec", BAD_SPECS)
def test_bad_specs_exit_2_with_one_line(spec: str) -> None:
    """Every bad spec from the issue: exit 2, a single stderr line naming it, no traceback, nothing on stdout."""
    res = recon("sweep", spec)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("recon: error: invalid target"), res.stderr
    assert repr(spec) in lines[0] and "Traceback" not in res.stderr and res.stdout == ""


def test_debug_shows_the_traceback() -> None:
    """--debug adds the traceback; the exit status stays 2."""
    res = recon("--debug", "sweep", "1.2.3")
    assert res.returncode == 2 and "Traceback" in res.stderr and "InvalidTarget" in res.stderr


def test_usage_errors_are_one_line() -> None:
    """Unknown commands and options are usage errors: one line, exit 2."""
    for args in (["nope"], ["lab", "up", "--no-such-option"]):
        res = recon(*args)
        assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_unknown_lab_is_environment_error(tmp_path) -> None:
    """Using a lab that is not up is exit 3 with advice."""
    res = recon("lab", "status", env={"RECON_LAB_DIR": str(tmp_path), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    assert res.returncode == 3 and "recon lab up" in res.stderr
