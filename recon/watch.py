"""Presence watching: rounds of sweeps, hysteresis, UP/DOWN/NEW/MOVED events, hooks, a state file.

The pieces, each usable alone:

- ``Tracker``: the pure state machine. Feed it each round's ``HostResult`` list; it returns events.
  Devices are keyed by address and remember their MAC, so it sees a MAC at a new IP and an IP
  answering with a new MAC (both ``MOVED``). ``DOWN`` only after ``misses`` silent rounds in a row
  (hysteresis against packet loss); ``UP`` at the first answer of an offline device.
  Addresses are IPv4 or IPv6, on-link link-local ones with their interface (``fe80::1%eth0``).
- ``load_state``/``save_state``: the JSON state file (atomic: temp file + ``os.replace``). A corrupt
  file is moved aside (``FILE.corrupt-<ts>``) and reported, never fatal.
- ``HookRunner``: ``--exec CMD`` and ``--notify``, run without a shell on worker threads so a slow or
  failing hook never stalls the rounds. Event details travel only in environment variables.
- ``Watch``: the loop. Its round source is injected (``round_source(targets) -> list[HostResult]``);
  the default is the sweep engine's ``Prober``, kept open (sockets and all) across rounds.

Nothing here prints or words anything for humans: rounds come back as ``WatchRound`` values whose
notes are typed (``StateSetAside``, ``HookFailed``, ``NotifierMissing``), and render.py words them.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import queue
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recon.errors import InvalidOption, ReconEnvironmentError, check_range
from recon.models import (
    DeviceState,
    Event,
    HookFailed,
    HostResult,
    NotifierMissing,
    StateSetAside,
    WatchNote,
    WatchRound,
)
from recon.targets import TargetSet, address_key, exact_address

__all__ = [
    "EVENTS",
    "HookRunner",
    "ProbeOptions",
    "Tracker",
    "Watch",
    "covers",
    "default_round_source",
    "hook_env",
    "load_state",
    "normalize_mac",
    "parse_exec",
    "save_state",
]


EVENTS = ("UP", "DOWN", "NEW", "MOVED")
STATE_VERSION = 1
RoundSource = Callable[[TargetSet], Sequence[HostResult]]

_MAC = re.compile(r"^[0-9a-f]{2}([:-]?)[0-9a-f]{2}(\1[0-9a-f]{2}){4}$")


def now_iso() -> str:
    """The current time, ISO 8601 with the local timezone offset."""
    return datetime.now(UTC).astimezone().isoformat(timespec="milliseconds")


def normalize_mac(text: str) -> str:
    """``AA-BB-CC-DD-EE-FF`` / ``aabb.ccdd.eeff`` / ``aabbccddeeff`` → ``aa:bb:cc:dd:ee:ff``, else InvalidOption."""
    raw = text.strip().lower().replace(".", "")
    if not _MAC.match(raw):
        raise InvalidOption("--mac", text, "a MAC address like aa:bb:cc:dd:ee:ff")
    digits = re.sub(r"[^0-9a-f]", "", raw)
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


# --- the state machine ---------------------------------------------------------------


class Tracker:
    """Turns rounds of sweep results into events.

    ``misses``: a device that was up goes DOWN after this many silent rounds in a row.
    ``known``: devices from the state file (they are not NEW again; they start offline).
    ``in_scope``: which addresses this watch covers (devices outside it are neither probed nor DOWN).
    ``macs``/``hosts``: the watch list; when either is given only matching events are returned.
    The first round sets the baseline: devices answering are up (no UP events), but NEW and
    MOVED are reported against the state file.
    """

    def __init__(self, *, misses: int = 3, known: Sequence[DeviceState] = (), in_scope: Callable[[str], bool] | None = None,
                 macs: Sequence[str] = (), hosts: Callable[[str], bool] | None = None) -> None:
        if misses < 1:
            raise InvalidOption("--misses", misses, "a whole number of rounds, at least 1")
        self.misses = misses
        self.devices: dict[str, DeviceState] = {d.address: replace(d, up=False, misses=0) for d in known}
        self.in_scope = in_scope or (lambda _a: True)
        self.macs = frozenset(normalize_mac(m) for m in macs)
        self.hosts = hosts
        self.rounds = 0

    # -- queries --------------------------------------------------------------------
    def inventory(self, *, only_up: bool = False) -> tuple[DeviceState, ...]:
        devs = (d for d in self.devices.values() if d.up or not only_up)
        return tuple(sorted(devs, key=lambda d: address_key(d.address)))

    def up_count(self) -> int:
        return sum(1 for d in self.devices.values() if d.up)

    def watched(self, event: Event) -> bool:
        """True when the event concerns the watch list (or there is no watch list)."""
        if not self.macs and self.hosts is None:
            return True
        macs = {event.mac, event.previous}
        if self.macs & macs:
            return True
        if self.hosts is not None:
            return any(a is not None and self.hosts(a) for a in (event.address, event.previous))
        return False

    # -- the step ---------------------------------------------------------------------
    def observe(self, hosts: Sequence[HostResult], when: str | None = None) -> list[Event]:
        """One round's results (every probed target, any status) → the events it causes, watch list applied."""
        when = when or now_iso()
        first = self.rounds == 0
        self.rounds += 1
        events: list[Event] = []
        answered = {h.address: h for h in hosts if h.status == "up"}
        by_mac: dict[str, list[str]] = {}
        for addr, known in self.devices.items():
            if known.mac:
                by_mac.setdefault(known.mac, []).append(addr)

        for addr, h in answered.items():
            mac = h.mac.lower() if h.mac else None
            dev = self.devices.get(addr)
            kind: str | None = None
            previous: str | None = None
            if dev is None:
                # a known MAC at a new address, which it left (its old address is silent now)
                old_addr = next((a for a in by_mac.get(mac, ()) if a not in answered), None) if mac else None
                if mac and old_addr is not None:
                    by_mac[mac].remove(old_addr)  # it moved once; a second new address of this MAC is NEW
                    old = self.devices.pop(old_addr)
                    dev = replace(old, address=addr)
                    kind, previous = "MOVED", old_addr
                else:
                    dev = DeviceState(addr, mac, h.vendor, h.hostname, when, when)
                    kind = "NEW"
            elif mac and dev.mac and mac != dev.mac:
                kind, previous = "MOVED", dev.mac
                dev = replace(dev, vendor=h.vendor)  # the old MAC's vendor no longer applies
            elif not dev.up and not first:
                kind = "UP"
            dev = replace(dev, mac=mac or dev.mac, vendor=h.vendor or dev.vendor, hostname=h.hostname or dev.hostname,
                          up=True, misses=0, last_seen=when)
            self.devices[addr] = dev
            if kind:
                events.append(Event(kind, when, dev.address, dev.mac, dev.vendor, dev.hostname, previous))

        for addr, dev in self.devices.items():
            if addr in answered or not dev.up or not self.in_scope(addr):
                continue
            gone = dev.misses + 1 >= self.misses
            self.devices[addr] = replace(dev, misses=dev.misses + 1, up=not gone)
            if gone:
                events.append(Event("DOWN", when, dev.address, dev.mac, dev.vendor, dev.hostname))
        return [e for e in events if self.watched(e)]


def covers(targets: TargetSet) -> Callable[[str], bool]:
    """Whether a row's address is one of ``targets``: an IPv4 or IPv6 address of theirs, a scoped target
    (``fe80::1%eth0``), or any host of a multicast group target's link (``ff02::1%eth0``: its members answer
    from their own addresses, link-local ones scoped with that interface)."""
    scoped = {str(s) for s in targets.scoped if not s.multicast}
    links = {s.interface for s in targets.scoped if s.multicast}
    in_v4, in_v6 = targets.__contains__, targets.v6.__contains__  # each takes text of its own family only

    def inside(address: str) -> bool:
        text, _, scope = address.partition("%")
        if scope:
            return address in scoped or scope in links
        if in_v4(address) or in_v6(text):
            return True
        return bool(links) and address_key(text)[0] == 6  # any IPv6 address (not a MAC, not junk)

    return inside


# --- the state file ----------------------------------------------------------------------


STATE_MAX_BYTES = 64 << 20  # a /16 of devices is ~16 MiB; beyond this a file is damage, not state
_TEXT_MAX = 255  # a DNS name is at most 253 characters; vendors are shorter
_TIME_MAX = 64


def load_state(path: str | os.PathLike[str]) -> tuple[list[DeviceState], StateSetAside | None]:
    """Known devices from ``path`` and a note for the user (or None).

    A missing file is an empty state. A corrupt or hostile one (bad JSON, wrong shape, a field that
    does not validate, not UTF-8, too deep, too big, a FIFO) is renamed to ``FILE.corrupt-<timestamp>``
    and reported in the note; watching starts from scratch. A directory or a device is refused (exit 2).
    """
    p = Path(path)
    try:
        raw = _read_state(p)
        if raw is None:
            return [], None
        return _parse_state(raw), None
    except _Unusable as exc:
        problem = exc
    aside = p.with_name(f"{p.name}.corrupt-{datetime.now().strftime('%Y%m%dT%H%M%S.%f')}")
    try:
        os.replace(p, aside)
    except OSError as exc:
        raise InvalidOption("--state", str(p), f"a state file recon can move aside when it is corrupt ({exc.strerror})") from None
    return [], StateSetAside(str(p), str(aside), problem.problem, problem.device, problem.field, problem.detail)


class _Unusable(Exception):
    """Why a state file cannot be used (the fields of ``StateSetAside``)."""

    def __init__(self, problem: str, device: int | None = None, field: str | None = None, detail: str | None = None):
        super().__init__(problem)
        self.problem, self.device, self.field, self.detail = problem, device, field, detail


def _read_state(p: Path) -> bytes | None:
    """The file's bytes, None when there is none, or _Unusable.

    Opened non-blocking so a FIFO cannot hang the start; read at most STATE_MAX_BYTES + 1.
    """
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a socket
            raise _Unusable("not-regular") from None
        raise InvalidOption("--state", str(p), f"a readable file ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode) or stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            raise InvalidOption("--state", str(p), "a regular file, not a directory or a device")
        if not stat.S_ISREG(st.st_mode):
            raise _Unusable("not-regular")
        chunks, size = [], 0
        while size <= STATE_MAX_BYTES and st.st_size <= STATE_MAX_BYTES and (chunk := os.read(fd, 1 << 20)):
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise InvalidOption("--state", str(p), f"a readable file ({exc.strerror})") from None
    finally:
        os.close(fd)
    if max(size, st.st_size) > STATE_MAX_BYTES:
        raise _Unusable("too-big", detail=str(STATE_MAX_BYTES))
    return b"".join(chunks)


def _parse_state(raw: bytes) -> list[DeviceState]:
    """Every field validated strictly; the first bad one raises _Unusable (which names it, never echoes it)."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise _Unusable("not-utf8") from None
    except RecursionError:
        raise _Unusable("too-deep") from None
    except ValueError as exc:  # JSONDecodeError, or an integer over Python's digit limit
        raise _Unusable("json", detail=str(exc)[:120]) from None
    if not isinstance(data, dict) or not isinstance(data.get("devices"), list):
        raise _Unusable("shape")
    return [_state_device(n, item) for n, item in enumerate(data["devices"], 1)]


def _state_device(n: int, item: object) -> DeviceState:
    if not isinstance(item, dict):
        raise _Unusable("field", n)
    address = item.get("address")
    if not isinstance(address, str) or not _device_address(address):
        raise _Unusable("field", n, "address")
    mac = item.get("mac")
    if mac is not None:
        if not isinstance(mac, str) or len(mac) > 17 or not _MAC.match(mac.strip().lower().replace(".", "")):
            raise _Unusable("field", n, "mac")
        mac = normalize_mac(mac)
    vendor, hostname = (_state_field(n, item, key, state_text_ok) for key in ("vendor", "hostname"))
    first, last = (_state_field(n, item, key, _time_ok) for key in ("first_seen", "last_seen"))
    first = first or last or ""
    return DeviceState(address=address, mac=mac, vendor=vendor, hostname=hostname, first_seen=first,
                       last_seen=last or first)


def _state_field(n: int, item: dict[str, object], key: str, ok: Callable[[str], bool]) -> str | None:
    value = item.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not ok(value):
        raise _Unusable("field", n, key)
    return value


def _device_address(text: str) -> bool:
    """Exactly an address as rows carry it (``targets.exact_address``), and one a device can have: never a
    multicast group, and after ``%`` an interface name, never a number (``fe80::1%eth0``, not ``fe80::1%2``)."""
    try:
        family, value, scope = exact_address(text)
    except ValueError:
        return False
    return not scope.isdigit() and not (family == 6 and value >> 120 == 0xFF)


def state_text_ok(text: str) -> bool:
    """A vendor or host name fit for the state file: bounded, printable (no control or bidi characters)."""
    return len(text) <= _TEXT_MAX and text.isprintable()


def _time_ok(text: str) -> bool:
    if len(text) > _TIME_MAX or not text.isprintable():
        return False
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def save_state(path: str | os.PathLike[str], devices: Sequence[DeviceState]) -> None:
    """Write the known devices atomically: a temp file in the same directory, fsync, ``os.replace``."""
    p = Path(path)
    data = {
        "version": STATE_VERSION,
        "updated": now_iso(),
        "devices": [
            {"address": d.address, "mac": d.mac, "vendor": _text_or_none(d.vendor), "hostname": _text_or_none(d.hostname),
             "first_seen": d.first_seen, "last_seen": d.last_seen, "up": d.up}
            for d in devices
        ],
    }
    payload = (json.dumps(data, indent=1) + "\n").encode("utf-8")
    try:
        # mkstemp: a random name opened O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600, so a planted symlink or
        # file is never followed or truncated (the name used to be predictable: .NAME.PID.tmp)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    except OSError as exc:
        raise _state_write_error(p, exc) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _state_write_error(p, exc) from None
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dirfd = os.open(p.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)


def _state_write_error(p: Path, exc: OSError) -> ReconEnvironmentError:
    """A failed state write: one line, exit 3; the previous state file is untouched."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = "free space on that filesystem or pass --state elsewhere"
    elif exc.errno == errno.EROFS:
        hint = "the filesystem is read-only: pass --state elsewhere"
    else:
        hint = "pass --state with a file in a writable directory"
    return ReconEnvironmentError(f"cannot write state file {str(p)!r}: {exc.strerror or exc}; the previous state file "
                                 "is unchanged", hint=hint)


def _text_or_none(text: str | None) -> str | None:
    """Names off the wire that the loader would refuse (controls, bidi, overlong) are not saved."""
    return text if text is not None and state_text_ok(text) else None


# --- hooks ----------------------------------------------------------------------------------


def parse_exec(command: str) -> list[str]:
    """``--exec CMD`` → argv (shlex rules, no shell), checked before anything is sent."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise InvalidOption("--exec", command, f"a command line ({exc})") from None
    if not argv:
        raise InvalidOption("--exec", command, "a command to run for each event")
    if shutil.which(argv[0]) is None:
        raise InvalidOption("--exec", command, f"{argv[0]!r} is not an executable on PATH")
    return argv


def hook_env(event: Event, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a hook sees: the caller's, plus RECON_EVENT/ADDRESS/MAC/VENDOR/HOSTNAME/TIME."""
    env = dict(os.environ if base is None else base)
    env.update({
        "RECON_EVENT": event.event,
        "RECON_ADDRESS": event.address,
        "RECON_MAC": event.mac or "",
        "RECON_VENDOR": event.vendor or "",
        "RECON_HOSTNAME": event.hostname or "",
        "RECON_TIME": event.time,
        "RECON_PREVIOUS": event.previous or "",
    })
    return env


class HookRunner:
    """Runs ``--exec`` and ``--notify`` per event on daemon worker threads, never through a shell.

    ``submit`` returns at once. One worker keeps hooks in event order; a slow hook only delays later
    hooks (each bounded by ``timeout``), never the rounds. Failures become notes (``notes()``),
    reported by the CLI.
    """

    def __init__(self, argv: Sequence[str] | None = None, *, notify: bool = False, timeout: float = 60.0,
                 describe: Callable[[Event], tuple[str, str]] | None = None) -> None:
        self.argv = list(argv) if argv else None
        self.timeout = timeout
        self._notes: queue.SimpleQueue[WatchNote] = queue.SimpleQueue()
        self.notifier = shutil.which("notify-send") if notify else None
        if notify and self.notifier is None:
            self._notes.put(NotifierMissing())
        if describe is None and self.notifier:
            from recon import render  # the wording lives in render

            describe = render.watch_notification
        self.describe = describe
        self._jobs: queue.SimpleQueue[tuple[str, list[str], dict[str, str] | None] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        if self.argv or self.notifier:
            self._thread = threading.Thread(target=self._work, name="recon-hook", daemon=True)
            self._thread.start()

    def submit(self, event: Event) -> None:
        if self.argv:
            self._jobs.put(("exec", self.argv, hook_env(event)))
        if self.notifier and self.describe:
            title, body = self.describe(event)
            self._jobs.put(("notify", [self.notifier, "--app-name=recon", title, body], None))

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            self._run(*job)

    def _run(self, kind: str, argv: list[str], env: dict[str, str] | None) -> None:
        try:
            res = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=sys.stderr.fileno(),
                                 timeout=self.timeout, check=False)
        except subprocess.TimeoutExpired:
            self._notes.put(HookFailed(kind, argv[0], "timeout", timeout=self.timeout))
        except OSError as exc:
            self._notes.put(HookFailed(kind, argv[0], "oserror", error=exc.strerror or str(exc)))
        else:
            if res.returncode != 0:
                self._notes.put(HookFailed(kind, argv[0], "status", status=res.returncode))

    def notes(self) -> list[WatchNote]:
        out = []
        while True:
            try:
                out.append(self._notes.get_nowait())
            except queue.Empty:
                return out

    def close(self, wait: float = 5.0) -> None:
        """Let queued hooks finish for up to ``wait`` seconds, then stop the worker."""
        if self._thread is not None:
            self._jobs.put(None)  # behind the queued hooks
            self._thread.join(wait)
            self._thread = None


# --- round sources ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProbeOptions:
    """How each round probes: the sweep engine's options, passed through to its ``Prober`` and ``sweep()``.

    This is the one place for them. When the engine gains more probe options (TCP/UDP probes, the
    new ``--probe`` forms), add the field here, pass it on in ``default_round_source`` and add the
    option to ``recon watch`` in cli.py (beside ``-t``, ``-i`` and ``--rate``); nothing else changes.
    """

    timeout: float = 1.0
    retries: int = 1
    interface: str | None = None
    rate: float | None = None


class _EngineRound:
    """A round on the sweep engine: one ``Prober`` (and its sockets) kept open across rounds."""

    def __init__(self, prober: Any, options: ProbeOptions) -> None:
        self.prober = prober
        self.options = options

    def __call__(self, targets: TargetSet) -> list[HostResult]:
        result = self.prober.sweep(targets, timeout=self.options.timeout, retries=self.options.retries)
        return list(result.hosts)

    def close(self) -> None:
        self.prober.close()


def default_round_source(options: ProbeOptions | None = None, **fields: Any) -> RoundSource:
    """Rounds on the sweep engine: one ``Prober`` (ARP or Neighbor Discovery on-link so MACs are known, ICMP
    echo beyond; scoped IPv6 targets by ndp.discover), kept open.
    ``fields`` (timeout=, retries=, interface=, rate=) stand for a ``ProbeOptions``."""
    from recon.engine import Prober

    opts = options or ProbeOptions(**fields)
    return _EngineRound(Prober(method="auto", interface=opts.interface, rate=opts.rate), opts)


# --- the loop ---------------------------------------------------------------------------------------


class _Resolver:
    """Reverse names, looked up concurrently once per address (misses cached too), so rounds stay fast."""

    def __init__(self, time_limit: float = 1.0) -> None:
        self.cache: dict[str, str | None] = {}
        self.time_limit = time_limit

    def __call__(self, addresses: Sequence[str]) -> dict[str, str]:
        todo = [a for a in addresses if a not in self.cache and "%" not in a]  # nothing names a scoped address
        if todo:
            from recon.engine import reverse_dns

            found = reverse_dns(todo, time_limit=self.time_limit)
            for a in todo:
                self.cache[a] = found.get(a)
        return {a: n for a in addresses if (n := self.cache.get(a))}


PERIOD_MAX = 86400.0  # a round a day at the least; longer periods are a cron job's work
TIMEOUT_MAX = 3600.0  # as ping caps its waits
RATE_MIN, RATE_MAX = 1.0, 10_000_000.0


def check_options(*, period: float, misses: int, timeout: float | None = None, rate: float | None = None,
                  state: str | None = None) -> None:
    """Every watch option that can be checked before anything is opened or sent (InvalidOption: exit 2)."""
    check_range("--period", period, 0, PERIOD_MAX, f"seconds between rounds, 0 to {PERIOD_MAX:g}")
    if misses < 1:
        raise InvalidOption("--misses", misses, "a whole number of rounds, at least 1")
    check_range("--timeout", timeout, 0, TIMEOUT_MAX, f"seconds to wait for replies, more than 0 and at most {TIMEOUT_MAX:g}",
                above_low=True)
    check_range("--rate", rate, RATE_MIN, RATE_MAX, f"probes per second, {RATE_MIN:g} to {RATE_MAX:,.0f}")
    if state:
        folder = Path(os.path.abspath(state)).parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise InvalidOption("--state", state, f"a file in a writable directory ({str(folder)!r} is not one)")
        if os.path.isdir(state):
            raise InvalidOption("--state", state, "a file, not a directory")


def require_privileges() -> None:
    """Raw sockets or a PrivilegeError (exit 3) whose advice fits watch: ICMP datagram sockets (ping's
    ping_group_range) cannot send ARP, so only root or CAP_NET_RAW helps."""
    from recon.errors import PrivilegeError
    from recon.transport import require_raw

    try:
        require_raw("recon watch")
    except PrivilegeError:
        python = os.path.realpath(sys.executable)
        raise PrivilegeError("recon watch (ARP, Neighbor Discovery and ICMP on raw sockets)", hint=(
            f"run it with sudo, or grant the capability once with 'sudo setcap cap_net_raw+ep {python}'")) from None


class Watch:
    """``recon watch``: rounds every ``period`` seconds, events, hooks and the state file.

    Use as a context manager; leaving it (normally, on error or on Ctrl-C) saves the state, closes
    the round source and lets queued hooks finish briefly.
    """

    def __init__(self, targets: TargetSet, *, period: float = 1.0, misses: int = 3, macs: Sequence[str] = (),
                 hosts: TargetSet | None = None, state: str | None = None, hooks: HookRunner | None = None,
                 round_source: RoundSource | None = None, timeout: float | None = None, retries: int = 1,
                 resolve: Callable[[Sequence[str]], dict[str, str]] | None = None, save_every: float = 10.0,
                 interface: str | None = None, rate: float | None = None) -> None:
        check_options(period=period, misses=misses, timeout=timeout, rate=rate, state=state)
        self.targets = targets
        self.period = period
        self.state_path = state
        self.hooks = hooks or HookRunner()
        self.save_every = save_every
        self.notes: list[WatchNote] = []
        known: list[DeviceState] = []
        if state:
            known, note = load_state(state)
            if note:
                self.notes.append(note)
        self.tracker = Tracker(misses=misses, known=known, in_scope=covers(targets), macs=macs,
                               hosts=covers(hosts) if hosts is not None else None)
        # a round must end well before the next is due, so DOWN comes within ~(misses+1) periods
        self.timeout = timeout if timeout is not None else min(1.0, max(0.2, period * 0.6))
        self.round_source = round_source or default_round_source(
            ProbeOptions(timeout=self.timeout, retries=retries, interface=interface, rate=rate))
        self.resolve = resolve or _Resolver()
        self._saved_at = 0.0
        self._save_failed = False
        self._save_due = False

    @functools.cached_property
    def address_width(self) -> int:
        """The address column's width for this watch's event lines: its widest address (``TargetSet.widest_address``)."""
        return self.targets.widest_address()

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Save the state, close the round source, let hooks finish briefly. A second Ctrl-C (or a
        SIGTERM) arriving meanwhile waits until this is done, so the state file is always complete."""
        held = {signal.SIGINT, signal.SIGTERM}
        main = threading.current_thread() is threading.main_thread()
        if main:
            signal.pthread_sigmask(signal.SIG_BLOCK, held)
        try:
            self.save()
        finally:
            try:
                closer = getattr(self.round_source, "close", None)
                if closer:
                    closer()
                self.hooks.close(wait=2.0)
            finally:
                if main:
                    signal.pthread_sigmask(signal.SIG_UNBLOCK, held)

    def save(self) -> None:
        """Write the state file. After a failed write (full disk) it is not tried again on the way out,
        so the one error is reported once and the previous file stays as it was."""
        if self.state_path and not self._save_failed:
            try:
                save_state(self.state_path, self.tracker.inventory())
            except ReconEnvironmentError:
                self._save_failed = True
                raise
            self._saved_at = time.monotonic()

    def step(self) -> WatchRound:
        """One round: sweep, name the new, update the tracker, fire hooks. ``rounds()`` saves the state
        after the round has been handed out (so it is shown even when the disk is full); ``close()``
        saves too."""
        hosts = list(self.round_source(self.targets))
        unnamed = []
        for h in hosts:
            if h.status == "up" and h.hostname is None:
                known = self.tracker.devices.get(h.address)
                if not (known and known.hostname and known.mac == (h.mac and h.mac.lower())):
                    unnamed.append(h.address)
        names = self.resolve(unnamed) if unnamed else {}
        named = []
        for h in hosts:
            name = names.get(h.address)
            named.append(replace(h, hostname=name) if name and h.hostname is None else h)
        when = now_iso()
        first = self.tracker.rounds == 0
        events = self.tracker.observe(named, when)
        for event in events:
            self.hooks.submit(event)
        self._save_due = bool(events) or first or time.monotonic() - self._saved_at >= self.save_every
        notes = tuple(self.notes + self.hooks.notes())
        self.notes.clear()
        return WatchRound(self.tracker.rounds, when, tuple(events),
                          self.tracker.inventory(only_up=True) if first else None, self.tracker.up_count(), notes)

    def rounds(self, *, once: bool = False, count: int | None = None) -> Iterator[WatchRound]:
        """Rounds forever (or ``once``, or ``count`` of them), one every ``period`` seconds."""
        due = time.monotonic()
        n = 0
        while True:
            yield self.step()
            if self._save_due:
                self.save()
            n += 1
            if once or (count is not None and n >= count):
                return
            due += self.period
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            else:
                due = time.monotonic()  # behind schedule: do not try to catch up with a burst
