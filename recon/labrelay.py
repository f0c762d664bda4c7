"""The lab's helper process: a userspace link emulator between two TUN devices, and the
lab's listening services.

It runs on its own (``python -m recon.labrelay RTR_NS RTR_IF WAN_NS WAN_IF PARAMS
[NS,PROTO,ADDRESS,PORT ...]``), started by ``recon.lab.Lab.impair``. Packets from the
router's TUN go to the wan's at once; packets back are delayed by ``delay_ms`` ±
``jitter_ms`` (read from the JSON file PARAMS, and again on SIGHUP). Each service is a
socket in namespace NS: ``tcp`` listens (the kernel sends the SYN-ACK; connections are
accepted and closed), ``udp`` echoes every datagram back to its sender. It prints
``ready`` once the TUNs and services are open, and ends on SIGTERM or when a namespace
disappears (a TUN read fails).

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
import socket
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


def _open_service(spec: str) -> socket.socket:
    ns, proto, address, port = spec.split(",")
    setns(ns)
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, int(port)))
    if proto == "tcp":
        sock.listen(64)
    sock.setblocking(False)
    return sock


def _serve(sock: socket.socket) -> None:
    """Answer one readable service socket: accept and close (tcp), or echo the datagram (udp)."""
    try:
        if sock.type == socket.SOCK_STREAM:
            conn, _ = sock.accept()
            conn.close()
        else:
            data, peer = sock.recvfrom(65535)
            sock.sendto(data, peer)
    except OSError:
        pass


def _relay(near: int, far: int, params: _Params, services: Sequence[socket.socket], anchor: str) -> None:
    """Move packets until a TUN goes away, or the namespace ``anchor`` (a /run/netns path) is deleted.

    Our open TUNs and sockets keep the lab's namespaces alive, so a lab removed with a bare
    ``ip netns del`` would never end this process by itself: it looks for ``anchor`` once a second.
    One loop, as a call per packet would cost speed.
    """
    heap: list[tuple[float, int, bytes]] = []
    seq = 0
    rng = random.Random()
    by_fd = {s.fileno(): s for s in services}
    watched = [near, far, *by_fd]
    next_look = time.monotonic() + 1.0
    while True:
        now = time.monotonic()
        if now >= next_look:
            if not os.path.exists(anchor):
                return
            next_look = now + 1.0
        timeout = min(max(0.0, heap[0][0] - now), next_look - now) if heap else next_look - now
        try:
            readable, _, _ = select.select(watched, [], [], timeout)
        except InterruptedError:
            continue
        try:
            for fd in readable:
                if fd in by_fd:
                    _serve(by_fd[fd])
                    continue
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
    rtr_ns, rtr_if, wan_ns, wan_if, params_path, *service_specs = argv
    near = _open_tun(rtr_ns, rtr_if)
    far = _open_tun(wan_ns, wan_if)
    services = [_open_service(spec) for spec in service_specs]
    params = _Params(params_path)
    signal.signal(signal.SIGHUP, params.reload)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    os.close(1)
    _relay(near, far, params, services, f"/run/netns/{rtr_ns}")


if __name__ == "__main__":
    main(sys.argv[1:])
