"""Shared fixtures: the namespace lab, and running recon the way a user does.

``run_cli(*args)`` runs recon in-process (``cli.run`` with captured streams): use it for
everything that needs neither root nor the lab. ``recon(*args)`` runs ``python -m recon`` in a
subprocess, for what must be a separate process (raw bytes in argv, signals, start-up imports,
another user through ``NOBODY``, namespaces).

Lab tests never skip in CI (CI=true): a lab that cannot be built fails them.
Every namespace a test run creates is gone when the run ends, pass or fail.
"""

from __future__ import annotations

import ctypes
import functools
import io
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from recon.lab import Lab, lab_dir
from recon.labrelay import setns
from recon.models import LabInfo
from recon.transport import ReplayTransport

IN_CI = os.environ.get("CI", "").lower() == "true"
ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "captures"
# Run a command as nobody with no capabilities: prefix an argv with this (needs setpriv).
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]
RECON = [sys.executable, "-m", "recon"]


@dataclass(frozen=True)
class Result:
    """What an in-process run of the CLI printed and returned."""

    code: int
    stdout: str
    stderr: str

    @property
    def returncode(self) -> int:  # the subprocess spelling, so a test reads the same either way
        return self.code


def run_cli(*args: str) -> Result:
    """``recon ARGS`` in-process through ``cli.run``, with stdout and stderr captured."""
    from recon.cli import run

    out, err = io.StringIO(), io.StringIO()
    code = run(list(args), stdout=out, stderr=err)
    return Result(code, out.getvalue(), err.getvalue())


def recon(*args: str, timeout: float = 60, **kw: object) -> subprocess.CompletedProcess[str]:
    """``python -m recon ARGS`` in a subprocess from the repository root, as a user runs it."""
    return subprocess.run([*RECON, *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout,
                          **kw)  # type: ignore[call-overload]  # kw are subprocess.run's own keywords


def fuzz_settings(brief: int, *also_suppress: HealthCheck) -> settings:
    """Hypothesis settings of a fuzz target (tests/test_fuzz_*.py): ``brief`` derandomized examples, the
    same every run (CI); with ``RECON_FUZZ_EXAMPLES=N`` (README: by hand), N new random ones."""
    long = os.environ.get("RECON_FUZZ_EXAMPLES", "").strip()
    if long and not (long.isdigit() and int(long) > 0):
        raise pytest.UsageError(f"RECON_FUZZ_EXAMPLES={long!r}: give a whole number of examples, e.g. 20000")
    return settings(
        max_examples=int(long) if long else brief,
        derandomize=not long,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, *also_suppress],
        database=None,
    )


# --- no network: for tests that run a sending command outside the lab and expect it refused -------------
# A regression there must not be able to send: such tests run recon in a network namespace of
# its own, whose only interface is a loopback that is down (no route, no DNS, no wire).

_CLONE_NEWNET = 0x40000000


@functools.cache
def _unshare_argv() -> list[str]:
    """``unshare`` for a new network namespace (with a user namespace when not root); skip (fail in CI) without it."""
    need_tool("unshare")
    argv = ["unshare", "--net", *([] if os.geteuid() == 0 else ["--user"]), "--"]
    if subprocess.run([*argv, "true"], capture_output=True).returncode != 0:
        reason = "this machine does not let this user make a network namespace (unshare --net)"
        if IN_CI:
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)
    return argv


def offline_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` run in a network namespace of its own (``unshare --net``): whatever it tries, nothing leaves."""
    return [*_unshare_argv(), *argv]


def recon_offline(*args: str, timeout: float = 60, **kw: object) -> subprocess.CompletedProcess[str]:
    """``python -m recon ARGS`` as ``recon()`` runs it, but in a network namespace of its own."""
    return subprocess.run(offline_argv([*RECON, *args]), capture_output=True, text=True, cwd=ROOT, timeout=timeout,
                          **kw)  # type: ignore[call-overload]  # kw are subprocess.run's own keywords


@contextmanager
def offline(transport: ReplayTransport | None = None) -> Iterator[ReplayTransport | None]:
    """In-process code in the block runs in a network namespace of its own (this thread; root only: another
    user cannot send raw packets anyway), and, with ``transport``, the library's default transport is that
    ReplayTransport (its ``.sent`` then shows whatever was tried)."""
    import recon.transport

    saved = recon.transport._DEFAULT
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY) if os.geteuid() == 0 else None
    try:
        if home is not None and ctypes.CDLL(None, use_errno=True).unshare(_CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), "unshare(CLONE_NEWNET)")
        if transport is not None:
            recon.transport._DEFAULT = transport
        yield transport
    finally:
        recon.transport._DEFAULT = saved
        if home is not None:
            try:
                setns(home)
            finally:
                os.close(home)


def run_cli_offline(*args: str) -> Result:
    """``run_cli`` inside ``offline()`` with a ReplayTransport; asserts that nothing was sent."""
    with offline(ReplayTransport()) as transport:
        res = run_cli(*args)
    assert transport is not None and transport.sent == [], (args, transport.sent)
    return res


# Every lab this test session makes (in-process or through the CLI) is named with this
# prefix, so the leak check sees only our namespaces, never another process's lab.
SESSION_PREFIX = f"rt{os.getpid() % 100000:05d}x"
os.environ["RECON_LAB_PREFIX"] = SESSION_PREFIX


def _namespaces() -> set[str]:
    """This session's namespaces (those named with SESSION_PREFIX)."""
    if shutil.which("ip") is None:
        return set()
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {name for name in (line.split()[0] for line in out.splitlines() if line.strip()) if name.startswith(SESSION_PREFIX)}


def lab_unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "the lab needs root"
    for tool in ("ip", "sysctl", "nft"):
        if shutil.which(tool) is None:
            return f"the lab needs '{tool}'"
    return None


def need_lab() -> None:
    """Skip without the lab, but fail under CI, where a skipped lab test is a defect."""
    reason = lab_unavailable_reason()
    if reason:
        if IN_CI:
            pytest.fail(f"CI=true and {reason}: .ci/run must provide the lab", pytrace=False)
        pytest.skip(reason)


def need_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail(f"CI=true and '{name}' is missing: .ci/run must install it", pytrace=False)
        pytest.skip(f"needs {name}")
    return path


@pytest.fixture(scope="session", autouse=True)
def _no_namespace_leaks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Isolate lab state files, and check that the run leaves `ip netns list` as it found it."""
    os.environ["RECON_LAB_DIR"] = str(tmp_path_factory.mktemp("labstate"))
    before = _namespaces()
    yield
    left = _namespaces() - before
    if left:
        subprocess.run(["ip", "-batch", "-"], input="".join(f"netns del {n}\n" for n in left), text=True)
        pytest.fail(f"test run left namespaces behind: {sorted(left)}", pytrace=False)


@contextmanager
def small_tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (e.g. "16k") mounted at ``where`` for the block, to test a full disk (root only);
    unmounted whatever happens."""
    where.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def pcap_frames(path: Path) -> list[bytes]:
    """The whole records of a classic pcap file that may still be growing (a torn tail waits for later)."""
    data = path.read_bytes() if path.exists() else b""
    if len(data) < 24:
        return []
    order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    frames, at = [], 24
    while at + 16 <= len(data):
        size = struct.unpack_from(order + "I", data, at + 8)[0]
        if at + 16 + size > len(data):
            break
        frames.append(data[at + 16:at + 16 + size])
        at += 16 + size
    return frames


@dataclass(frozen=True)
class Wire:
    """What tcpdump has written so far in a lab namespace (``LabHandle.capture``)."""

    path: Path

    def frames(self) -> list[bytes]:
        return pcap_frames(self.path)

    def wait_for(self, done: Callable[[list[bytes]], bool], timeout: float = 10.0) -> list[bytes]:
        """The frames, once ``done(frames)`` holds (AssertionError after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            frames = self.frames()
            if done(frames):
                return frames
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(frames)} frame(s) in {self.path.name}, not what the test waits for")
            time.sleep(0.05)  # tcpdump -U writes each frame as it comes; the file is the only signal


@dataclass
class LabHandle:
    """The running lab for tests: its truth (``info``) and ways to act in it."""

    lab: Lab
    info: LabInfo

    @property
    def ns(self) -> str:
        return self.info.scanner_ns

    def run(self, argv: Sequence[str], *, ns: str | None = None, timeout: float = 60, input: str | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run a command inside a lab namespace (the scanner's by default)."""
        full_env = {**os.environ, **(env or {})}
        return subprocess.run(["ip", "netns", "exec", ns or self.ns, *argv], capture_output=True, text=True,
                              timeout=timeout, input=input, env=full_env)

    def recon(self, *args: str, ns: str | None = None, timeout: float = 60, input: str | None = None,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """``recon ARGS`` as a user runs it, inside the scanner namespace."""
        return self.run([sys.executable, "-m", "recon", *args], ns=ns, timeout=timeout, input=input, env=env)

    def popen(self, argv: Sequence[str], *, ns: str | None = None, **kw: object) -> subprocess.Popen[str]:
        return subprocess.Popen(["ip", "netns", "exec", ns or self.ns, *argv], text=True, **kw)  # type: ignore[call-overload]

    @contextmanager
    def capture(self, ns: str, bpf: str, path: Path, *, iface: str = "eth0") -> Iterator[Wire]:
        """tcpdump on ``iface`` of lab namespace ``ns`` for the block, writing ``path``; ready when yielded."""
        need_tool("tcpdump")
        proc = self.popen(["tcpdump", "-i", iface, "-U", "-n", "-Z", "root", "-w", str(path), bpf], ns=ns,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 20
            while True:  # wait until tcpdump really listens
                ready, _, _ = select.select([proc.stderr], [], [], max(0.0, deadline - time.monotonic()))
                line = proc.stderr.readline() if ready else ""
                if "listening on" in line:
                    break
                if not line or time.monotonic() > deadline:
                    raise AssertionError(f"tcpdump did not start in {ns}: {line}")
            yield Wire(path)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=10)
            proc.stderr.close()

    @contextmanager
    def impaired(self, *, loss: float = 0.0, delay_ms: float = 0.0, jitter_ms: float = 0.0) -> Iterator[LabInfo]:
        """Apply impairments for the block, then restore a clean lab."""
        try:
            yield self.lab.impair(loss=loss, delay_ms=delay_ms, jitter_ms=jitter_ms)
        finally:
            self.info = self.lab.impair()

    def host(self, name: str):  # -> LabHost
        return next(h for h in self.info.hosts if h.name == name)


@pytest.fixture(scope="session")
def lab() -> Iterator[LabHandle]:
    """One lab for the whole session; torn down even when tests fail."""
    need_lab()
    the_lab = Lab()
    try:
        info = the_lab.up()
        yield LabHandle(the_lab, info)
    finally:
        the_lab.down()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test that uses the namespace lab (the ``lab`` fixture, directly or through another
    fixture) carries the ``lab`` marker, so ``pytest -m "not lab"`` runs exactly the tests that
    need neither root nor the lab."""
    for item in items:
        if "lab" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.lab)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under CI, any skipped test fails the run."""
    if not IN_CI:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped and exitstatus == 0:
        session.exitstatus = 1
        if reporter:
            reporter.write_line(f"CI=true: {skipped} test(s) skipped; every test must run in CI", red=True)


__all__ = [
    "CAPTURES",
    "IN_CI",
    "NOBODY",
    "RECON",
    "ROOT",
    "LabHandle",
    "Result",
    "Wire",
    "fuzz_settings",
    "lab_dir",
    "need_lab",
    "need_tool",
    "offline",
    "offline_argv",
    "pcap_frames",
    "recon",
    "recon_offline",
    "run_cli",
    "run_cli_offline",
]
