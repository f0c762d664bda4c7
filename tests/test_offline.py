"""The harness that keeps refusal tests off the network (tests/conftest.py: offline, offline_argv):
inside, there is no route anywhere; after the block, the thread is back where it was."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys

import pytest

from tests.conftest import need_lab, offline, offline_argv

PROBE = "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ntry:\n    s.connect(('198.18.0.1', 9))\n" \
        "except OSError as e:\n    print(e.errno)\nelse:\n    print('routed')\n"


def _netns() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


@pytest.mark.lab  # needs root (a thread's own network namespace): in the root-only set, never skipped by "not lab" runs
def test_offline_block_has_no_route_and_the_thread_comes_back() -> None:
    need_lab()  # root; skips without it, fails under CI=true
    home = _netns()
    with offline():
        inside = _netns()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s, pytest.raises(OSError) as exc:
            s.connect(("198.18.0.1", 9))  # a UDP connect only routes; nothing is sent
    assert inside != home and _netns() == home
    assert exc.value.errno == errno.ENETUNREACH


def test_offline_argv_runs_the_command_without_a_route() -> None:
    res = subprocess.run(offline_argv([sys.executable, "-c", PROBE]), capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == str(errno.ENETUNREACH), res.stdout + res.stderr
