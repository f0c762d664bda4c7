"""The lab's helper process: a userspace link emulator between two TUN devices.

It runs on its own (``python -m recon.labrelay RTR_NS RTR_IF WAN_NS WAN_IF PARAMS``),
started by ``recon.lab.Lab.impair``. Packets from the router's TUN go to the wan's at
once; packets back are delayed by ``delay_ms`` ± ``jitter_ms`` (read from the JSON file
PARAMS, and again on SIGHUP). It prints ``ready`` once both TUNs are open, and ends on
SIGTERM or when a namespace disappears (a TUN read fails).

This module needs nothing from recon, so the process starts quickly.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import heapq
import json
import os
import random
import select
import signal
import struct
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main", "setns"]

_CLONE_NEWNET = 0x40000000
_TUNSETIFF = 0x400454CA
_IFF_TUN = 0x0001
_IFF_NO_PI = 0x1000

_libc = ctypes.CDLL(None, use_errno=True)


def setns(name_or_path: str | int) -> None:
    """Move the calling thread into a network namespace (a name under /run/netns, a path or an fd)."""
    if isinstance(name_or_path, int):
        fd, path, own = name_or_path, f"fd {name_or_path}", False
    else:
        path = name_or_path if name_or_path.startswith("/") else f"/run/netns/{name_or_path}"
        fd, own = os.open(path, os.O_RDONLY), True
    try:
        if _libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
    finally:
        if own:
            os.close(fd)


def _open_tun(ns: str, name: str) -> int:
    setns(ns)
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH", name.encode(), _IFF_TUN | _IFF_NO_PI))
    return fd


class _Params:
    """Delay and jitter, re-read from a JSON file on SIGHUP."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.delay_ms = 0.0
        self.jitter_ms = 0.0
        self.reload()

    def reload(self, *_: object) -> None:
        try:
            data = json.loads(self.path.read_text())
            self.delay_ms = float(data.get("delay_ms", 0.0))
            self.jitter_ms = float(data.get("jitter_ms", 0.0))
        except (OSError, ValueError, AttributeError):
            pass


def _relay(near: int, far: int, params: _Params) -> None:
    """Move packets until a TUN goes away. One loop, as a call per packet would cost speed."""
    heap: list[tuple[float, int, bytes]] = []
    seq = 0
    rng = random.Random()
    while True:
        timeout = max(0.0, heap[0][0] - time.monotonic()) if heap else None
        try:
            readable, _, _ = select.select([near, far], [], [], timeout)
        except InterruptedError:
            continue
        try:
            for fd in readable:
                packet = os.read(fd, 65535)
                if fd == near:
                    os.write(far, packet)
                else:
                    delay = params.delay_ms + rng.uniform(-params.jitter_ms, params.jitter_ms)
                    if delay <= 0 and not heap:
                        os.write(near, packet)
                    else:
                        seq += 1
                        heapq.heappush(heap, (time.monotonic() + delay / 1000.0, seq, packet))
            now = time.monotonic()
            while heap and heap[0][0] <= now:
                os.write(near, heapq.heappop(heap)[2])
        except OSError as exc:
            if exc.errno in (errno.EIO, errno.EBADFD, errno.ENODEV, errno.EINVAL, errno.EFAULT):
                return
            if exc.errno in (errno.EAGAIN, errno.ENOBUFS):
                continue
            raise


def main(argv: Sequence[str]) -> None:
    rtr_ns, rtr_if, wan_ns, wan_if, params_path = argv
    near = _open_tun(rtr_ns, rtr_if)
    far = _open_tun(wan_ns, wan_if)
    params = _Params(params_path)
    signal.signal(signal.SIGHUP, params.reload)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    os.close(1)
    _relay(near, far, params)


if __name__ == "__main__":
    main(sys.argv[1:])
