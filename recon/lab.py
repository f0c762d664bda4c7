"""The namespace lab's lifecycle: build it, inspect it, impair it, run inside it, tear it down.

What the lab is (its namespaces, ranges and truth) and how each segment is built lives
in ``recon.labbuild``; the link emulator in front of the wan range is its own small
process, ``recon.labrelay``. See ARCHITECTURE.md.

Impairments: this kernel may lack ``sch_netem``, so loss is an nftables
``numgen random`` drop on frames the bridge delivers to the scanner (round-trip
loss = the percentage), and delay/jitter are applied by the emulator in front of
the wan range. Both can be changed while the lab runs (``Lab.impair``).
"""

from __future__ import annotations

import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from recon.errors import InputError, InvalidOption, LabError
from recon.labbuild import LAN_HOSTS, ROUTER_MAC, SCANNER_MAC, build, check_tools, existing_namespaces, netns, run
from recon.models import LabHost, LabInfo, LabRange, LabService

__all__ = [
    "LAN_HOSTS", "ROUTER_MAC", "SCANNER_MAC", "Lab", "current_lab", "lab_dir", "lab_to_remove", "netns", "owner_uid", "set_current",
]


def lab_dir() -> Path:
    return Path(os.environ.get("RECON_LAB_DIR", "/run/recon-lab"))


class Lab:
    """Build, inspect, impair and tear down one named lab."""

    def __init__(self, name: str | None = None) -> None:
        # RECON_LAB_PREFIX lets a test session (or CI) recognise every lab it made.
        self.name = name or f"{os.environ.get('RECON_LAB_PREFIX', 'rl')}{secrets.token_hex(3)}"
        if not (self.name.isascii() and self.name.replace("-", "").isalnum()) or len(self.name) > 24:  # '١٢٣' is alnum too
            raise InvalidOption("lab name", self.name, "use up to 24 ASCII letters, digits or dashes")

    # names
    def ns(self, role: str) -> str:
        return f"{self.name}-{role}"

    @property
    def state_file(self) -> Path:
        return lab_dir() / f"{self.name}.json"

    # -- info --------------------------------------------------------------------------
    def info(self) -> LabInfo:
        try:
            data = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            raise LabError(f"lab {self.name!r} is not up", hint="run 'recon lab up' first") from None
        except (OSError, ValueError) as exc:
            raise LabError(f"lab state {self.state_file} is unreadable: {exc}", hint="run 'recon lab down'") from None
        try:
            return _info_from_json(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise LabError(f"lab state {self.state_file} is unreadable: {exc}", hint="run 'recon lab down'") from None

    def is_up(self) -> bool:
        try:
            return self.state_file.exists() and self.ns("scan") in existing_namespaces()
        except OSError:
            return False

    def _save(self, info: LabInfo) -> None:
        lab_dir().mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(info), indent=1))
        os.replace(tmp, self.state_file)

    # -- up ------------------------------------------------------------------------------
    def up(self, *, loss: float = 0.0, delay_ms: float = 0.0, jitter_ms: float = 0.0) -> LabInfo:
        """Build the lab (idempotent: an existing lab of this name is returned as is)."""
        check_tools()
        _validate_impairment(loss, delay_ms, jitter_ms)
        if self.is_up():
            return self.impair(loss=loss, delay_ms=delay_ms, jitter_ms=jitter_ms)
        self.down()  # clear half-built leftovers of the same name
        try:
            info = replace(build(self.name), owner_uid=owner_uid())
            self._save(info)
            return self.impair(loss=loss, delay_ms=delay_ms, jitter_ms=jitter_ms)
        except BaseException:
            self.down()
            raise

    # -- impairments -------------------------------------------------------------------------
    def impair(self, *, loss: float = 0.0, delay_ms: float = 0.0, jitter_ms: float = 0.0) -> LabInfo:
        """Set loss (toward the scanner) and the wan emulator's delay/jitter now."""
        _validate_impairment(loss, delay_ms, jitter_ms)
        info = self.info()
        _set_loss(info.switch_ns, loss)
        params = lab_dir() / f"{self.name}.relay.json"
        params.write_text(json.dumps({"delay_ms": delay_ms, "jitter_ms": jitter_ms}))
        pid = info.relay_pid
        if pid and _alive(pid):
            os.kill(pid, signal.SIGHUP)
        else:
            pid = self._start_relay(info, params)
        info = replace(info, loss=loss, delay_ms=delay_ms, jitter_ms=jitter_ms, relay_pid=pid)
        self._save(info)
        return info

    def _start_relay(self, info: LabInfo, params: Path) -> int:
        logfile = lab_dir() / f"{self.name}.relay.log"
        with open(logfile, "ab") as log:
            services = [f"{r.netns},{s.proto},{s.address},{s.port}" for r in info.ranges for s in r.services]
            proc = subprocess.Popen(
                [sys.executable, "-m", "recon.labrelay", info.router_ns, "tun-wan", info.wan_ns, "tun0", str(params), *services],
                stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 10)
        line = proc.stdout.readline() if ready else b""
        proc.stdout.close()
        if line.strip() != b"ready":
            proc.kill()
            raise LabError("the lab's link emulator did not start", hint=f"see {logfile}")
        return proc.pid

    # -- down --------------------------------------------------------------------------------
    def down(self) -> list[str]:
        """Remove every namespace, process and file of this lab. Returns what was removed."""
        _require_root("recon lab down", "the lab's namespaces and processes belong to root")
        try:
            pid = self.info().relay_pid
        except LabError:
            pid = None
        if pid and _alive(pid):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        mine = [n for n in existing_namespaces() if n.startswith(self.name + "-")]
        if mine:
            run(["ip", "-batch", "-"], input="".join(f"netns del {n}\n" for n in mine))
        shutil.rmtree(Path("/etc/netns") / self.ns("scan"), ignore_errors=True)
        for suffix in (".json", ".relay.json", ".relay.log", ".tmp"):
            (lab_dir() / f"{self.name}{suffix}").unlink(missing_ok=True)
        for pointer in lab_dir().glob("current*"):  # every user's pointer to this lab
            try:
                if pointer.read_text().strip() == self.name:
                    pointer.unlink()
            except OSError:
                pass
        return mine

    # -- running inside ------------------------------------------------------------------
    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        """``ip netns exec SCANNER ARGV``; run it with ``exec_env()``."""
        _require_root("recon lab exec", "entering a network namespace needs CAP_SYS_ADMIN")
        info = self.info()
        if not argv:
            raise InvalidOption("command", "", "give a command after '--', e.g. recon lab exec -- ping -c1 198.18.0.10")
        return ["ip", "netns", "exec", info.scanner_ns, *argv]

    @staticmethod
    def exec_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment for ``exec_argv``: the running interpreter's bin directory first on PATH,
        so ``recon lab exec -- recon ...`` finds the recon of this venv (sudo resets PATH)."""
        env = dict(os.environ if base is None else base)
        bindir = os.path.dirname(sys.executable)
        rest = [p for p in env.get("PATH", os.defpath).split(os.pathsep) if p and p != bindir]
        env["PATH"] = os.pathsep.join([bindir, *rest]) if bindir else os.pathsep.join(rest)
        return env

    def owner(self) -> int | None:
        """The uid that brought this lab up (None: not up, or recorded by an older recon)."""
        try:
            return self.info().owner_uid
        except LabError:
            return None

def _info_from_json(data: dict[str, Any]) -> LabInfo:
    """A LabInfo from its saved JSON (``asdict``): tuples and nested dataclasses restored."""
    data["hosts"] = tuple(LabHost(**h) for h in data["hosts"])
    ranges = []
    for r in data["ranges"]:
        r["up"] = tuple(r["up"]) if r["up"] is not None else None
        r["answers"] = tuple(r.get("answers", ()))
        r["services"] = tuple(LabService(**s) for s in r.get("services", ()))
        ranges.append(LabRange(**r))
    data["ranges"] = tuple(ranges)
    data["namespaces"] = tuple(data["namespaces"])
    return LabInfo(**data)


def _set_loss(switch_ns: str, loss: float) -> None:
    """Drop ``loss`` % of the frames the bridge delivers to the scanner (nftables numgen)."""
    if not shutil.which("nft"):
        if loss:
            raise LabError("--loss needs nftables", hint="apt-get install nftables")
        return
    if loss >= 100:
        rule = 'oifname "p-scan" drop'
    else:
        rule = f'oifname "p-scan" numgen random mod 10000 < {round(loss * 100)} drop' if loss else ""
    script = "flush chain bridge reconlab impair\n" + (f"add rule bridge reconlab impair {rule}\n" if rule else "")
    run(["ip", "netns", "exec", switch_ns, "nft", "-f", "-"], input=script)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours is not alive
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _validate_impairment(loss: float, delay_ms: float, jitter_ms: float) -> None:
    if not 0 <= loss <= 100:
        raise InvalidOption("--loss", loss, "a percentage from 0 to 100")
    if not 0 <= delay_ms <= 10_000:
        raise InvalidOption("--delay", delay_ms, "milliseconds from 0 to 10000")
    if not 0 <= jitter_ms <= delay_ms:
        raise InvalidOption("--jitter", jitter_ms, "milliseconds from 0 to the delay")


def owner_uid() -> int:
    """Who runs recon: the user who called sudo (SUDO_UID), else the real uid."""
    sudo_uid = os.environ.get("SUDO_UID", "")
    if os.geteuid() == 0 and sudo_uid.isascii() and sudo_uid.isdigit() and len(sudo_uid) < 11:
        return int(sudo_uid)
    return os.getuid()


def _pointer() -> Path:
    """This user's "current lab" file (per user, so one user's lab commands never pick another's lab)."""
    return lab_dir() / f"current-{owner_uid()}"


def current_lab() -> Lab:
    """This shell's or this user's current lab: ``$RECON_LAB`` if set, else the lab this user last
    brought up with ``recon lab up``, else a new name."""
    name = os.environ.get("RECON_LAB", "").strip()
    if name:
        return Lab(name)
    try:
        return Lab(_pointer().read_text().strip())
    except (OSError, UnicodeDecodeError, InvalidOption):  # none yet, not ours to read, or junk
        return Lab()


def set_current(lab: Lab) -> None:
    lab_dir().mkdir(parents=True, exist_ok=True)
    _pointer().write_text(lab.name + "\n")


def lab_to_remove(name: str | None) -> Lab:
    """The lab ``recon lab down`` removes: the one named, or the current lab if this user made it."""
    if name:
        return Lab(name)
    lab = current_lab()
    if not lab.is_up():
        return lab  # nothing to refuse: down() clears leftovers of this name and says it was not up
    owner, me = lab.owner(), owner_uid()
    if owner != me:
        who = "an older recon" if owner is None else f"uid {owner}"
        raise InputError(
            f"the current lab {lab.name} was made by {who}, not by you (uid {me})",
            hint=f"to remove it anyway, name it: recon lab down --name {lab.name}",
        )
    return lab


def _require_root(what: str, why: str) -> None:
    if os.geteuid() != 0:
        raise LabError(f"{what} needs root: {why}", hint="run it with sudo")
