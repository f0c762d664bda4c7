"""The packet-I/O seam: the only code in recon that opens sockets (ARCHITECTURE.md).

A ``Transport`` opens every kind of socket recon uses and maps privilege and OS
errors to ``ReconError``s once, with advice that fits the caller:

* ``icmp(family)``: a raw ICMP/ICMPv6 socket, or (``allow_dgram=True``) an ICMP
  datagram socket when raw sockets are refused and ``ping_group_range`` allows it;
* ``raw_ip(family, proto)``: ``SOCK_RAW`` for any IP protocol (TCP/UDP probes,
  ``IPPROTO_RAW`` with ``IP_HDRINCL`` for crafted headers);
* ``packet(iface, ethertype)``: an ``AF_PACKET`` socket bound to one interface
  (ARP, NDP at layer 2, crafted frames);
* ``capture(iface)``: an ``AF_PACKET`` socket for live capture;
* ``route_source(dst)`` and ``hardware(iface)``: what the kernel would pick as
  source address, and an interface's link type and MAC (no packet is sent).

``SystemTransport`` is the real one and the default everywhere. ``ReplayTransport``
feeds recorded bytes back instead of the network, the way httpx ships
``MockTransport``: what is sent is recorded in ``.sent``, and a responder (for
example ``Recording.from_pcap`` over a file in captures/) decides which recorded
packets come back. Its sockets are real file descriptors (an ``AF_UNIX`` datagram
pair) so ``select``/``poll`` and non-blocking reads behave as with the kernel's.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import os
import queue
import random
import select
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from recon.errors import InvalidOption, PrivilegeError, ReconEnvironmentError

__all__ = [
    "INTERFACE_LOST",
    "RECV_BATCH",
    "SEND_AGAIN",
    "SEND_BATCH",
    "SEND_REFUSED",
    "STAMP_SPACE",
    "PacketSocket",
    "ProbeSockets",
    "Recording",
    "RecvBatch",
    "ReplaySocket",
    "ReplayTransport",
    "SendBatch",
    "Sent",
    "SystemTransport",
    "Transport",
    "ancillary",
    "big_buffers",
    "bind_device",
    "default_transport",
    "interface_lost",
    "is_root",
    "ping_group_allows",
    "prepare_probe_socket",
    "privilege_hint",
    "proc_net",
    "received_ns",
    "require_raw",
    "scope_word",
    "stamp_receive_times",
]

ETH_P_ALL = 0x0003
_SO_RCVBUFFORCE = 33
_SO_SNDBUFFORCE = 32
_SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_SO_NETNS_COOKIE = 71  # asm-generic/socket.h: the network namespace a socket lives in (Linux 5.14)
_SIOCGSKNS = 0x894C  # linux/sockios.h: a descriptor of a socket's network namespace (Linux 4.9)
_SOL_RAW, _ICMP_FILTER = 255, 1  # linux/icmp.h: a raw ICMP socket's bitmask of types it does not want
_SIOCGIFHWADDR = 0x8927
_SIOCGIFCONF = 0x8912
_IFREQ_SIZE = 40  # struct ifreq on 64-bit Linux: 16-byte name, 24-byte union (a sockaddr_in here)
_MSG_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0x2000)
_IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
_IPV6_RECVERR = getattr(socket, "IPV6_RECVERR", 25)
_IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)
_IPV6_RECVHOPLIMIT = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
_IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)
_IFA_F_DADFAILED, _IFA_F_TENTATIVE = 0x08, 0x40  # linux/if_addr.h
_IPV6_ADDR_LINKLOCAL = 0x20  # the scope column of if_inet6 (include/net/ipv6.h)


def proc_net(name: str) -> Path:
    """/proc/…/net/NAME of this *thread's* network namespace (lab.netns switches threads, not processes)."""
    thread = Path("/proc/thread-self/net") / name
    return thread if thread.exists() else Path("/proc/self/net") / name


class PacketSocket(Protocol):
    """What recon calls on a socket; ``socket.socket`` and ``ReplaySocket`` both fit."""

    def fileno(self) -> int: ...
    def send(self, data: bytes | bytearray | memoryview, flags: int = ..., /) -> int: ...
    def sendto(self, data: bytes | bytearray | memoryview, address: Any, /) -> int: ...
    def recv(self, bufsize: int, flags: int = ..., /) -> bytes: ...
    def recvmsg(self, bufsize: int, ancbufsize: int = ..., flags: int = ..., /) -> tuple[bytes, list[tuple[int, int, bytes]], int, Any]: ...
    def setsockopt(self, level: int, optname: int, value: int | bytes, /) -> None: ...
    def getsockopt(self, level: int, optname: int, /) -> int: ...
    def getsockname(self) -> Any: ...
    def bind(self, address: Any, /) -> None: ...
    def setblocking(self, flag: bool, /) -> None: ...
    def settimeout(self, value: float | None, /) -> None: ...
    def close(self) -> None: ...


# --- privileges ------------------------------------------------------------------------------


def is_root() -> bool:
    return os.geteuid() == 0


def ping_group_allows(gid: int | None = None) -> bool:
    """True when ``net.ipv4.ping_group_range`` lets this process open ICMP datagram sockets."""
    try:
        lo, hi = (int(x) for x in Path("/proc/sys/net/ipv4/ping_group_range").read_text().split())
    except (OSError, ValueError):
        return False
    groups = {os.getegid(), *os.getgroups()} if gid is None else {gid}
    return any(lo <= g <= hi for g in groups)


def privilege_hint(*, dgram_helps: bool = False) -> str:
    """How to get raw sockets; when ICMP datagram sockets would do (ping), how to allow those too."""
    hint = PrivilegeError.ADVICE
    if not dgram_helps:
        return hint
    if ping_group_allows():
        return hint + " (unprivileged ICMP datagram sockets are allowed here)"
    return hint + ", or allow ICMP datagram sockets with 'sudo sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"'"


def _open(family: int, kind: int, proto: int, what: str, hint: str | None) -> socket.socket:
    """``socket(family, kind, proto)``; PermissionError and unsupported families become ReconErrors."""
    try:
        return socket.socket(family, kind, proto)
    except PermissionError:
        raise PrivilegeError(what, hint=hint or privilege_hint()) from None
    except OSError as exc:
        if exc.errno in (errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT, errno.ESOCKTNOSUPPORT, errno.EINVAL):
            raise ReconEnvironmentError(f"{what}: this system cannot open that kind of socket ({exc.strerror})",
                                        hint="recon's probes need Linux (AF_PACKET, raw sockets)") from None
        if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
            raise ReconEnvironmentError(f"{what}: cannot open a socket ({exc.strerror})",
                                        hint="close other programs or raise 'ulimit -n'") from None
        raise


def big_buffers(sock: PacketSocket, rcvbuf: int = 64 << 20, sndbuf: int = 4 << 20) -> None:
    """Large kernel buffers (the FORCE variants need CAP_NET_ADMIN; fall back to the capped ones)."""
    for force, plain, size in ((_SO_RCVBUFFORCE, socket.SO_RCVBUF, rcvbuf), (_SO_SNDBUFFORCE, socket.SO_SNDBUF, sndbuf)):
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, size)
        except OSError:
            try:
                sock.setsockopt(socket.SOL_SOCKET, plain, size)
            except OSError:
                pass


def bind_device(sock: PacketSocket, iface: str, option: str = "--interface") -> None:
    """SO_BINDTODEVICE: an unknown interface is bad input, a refusal a privilege problem."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_BINDTODEVICE, iface.encode())
    except PermissionError:
        raise PrivilegeError(f"binding to an interface ({option})") from None
    except OSError:
        raise InvalidOption(option, iface, "no such network interface here") from None


def prepare_probe_socket(sock: PacketSocket, family: int, *, interface: str | None, source: str | None) -> PacketSocket:
    """A sweep's raw probe socket made ready, or closed again when that fails: large buffers, bound to ``interface``
    (--interface) and to ``source`` (--source; None or "": unbound, so the kernel picks each probe's source by its
    route), IPv6 answers with their hop limit and kernel receive time, non-blocking. An address this machine
    does not have is InvalidOption."""
    try:
        big_buffers(sock)
        if interface:
            bind_device(sock, interface)
        if source:
            try:
                sock.bind((source, 0))
            except OSError:
                mine = "an IPv6 address" if family == socket.AF_INET6 else "an address"
                raise InvalidOption("--source", source, f"not {mine} of this machine") from None
        if family == socket.AF_INET6:  # a raw IPv6 socket reads no IP header: the hop limit, and the receive time
            sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVHOPLIMIT, 1)
            stamp_receive_times(sock)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class ProbeSockets:
    """A sweep's raw TCP and UDP sockets of one family, by IP protocol: kept open between sweeps (watch sweeps every
    round), opened again when the source they are bound to changes (``prepare_probe_socket``)."""

    def __init__(self, transport: Transport, family: int, interface: str | None, what: str) -> None:
        self.transport, self.family, self.interface, self.what = transport, family, interface, what
        self.socks: dict[int, PacketSocket] = {}
        self.source: str | None = None

    def get(self, source: str, protos: Iterable[int]) -> dict[int, PacketSocket]:
        """The sockets for ``protos`` bound to ``source`` ("" for unbound), opened as needed."""
        if self.source != source:
            self.close()
        for proto in sorted(set(protos) - set(self.socks)):
            sock = self.transport.raw_ip(self.family, proto, what=self.what)
            self.socks[proto] = prepare_probe_socket(sock, self.family, interface=self.interface, source=source)
        self.source = source
        return self.socks

    def close(self) -> None:
        for sock in self.socks.values():
            sock.close()
        self.socks = {}


# --- transports --------------------------------------------------------------------------------


class Transport:
    """Opens sockets for the library. Subclasses: ``SystemTransport`` (real), ``ReplayTransport`` (tests)."""

    name = "abstract"

    def icmp(self, family: int, *, what: str, allow_dgram: bool = False, hint: str | None = None) -> tuple[PacketSocket, str]:
        """An ICMP (v4) or ICMPv6 socket and its kind, ``"raw"`` or ``"dgram"``."""
        raise NotImplementedError

    def raw_ip(self, family: int, proto: int, *, what: str, hint: str | None = None) -> PacketSocket:
        """``SOCK_RAW`` for IP protocol ``proto`` (``IPPROTO_RAW`` carries our own IPv4 header)."""
        raise NotImplementedError

    def twins(self, sock: PacketSocket) -> bool:
        """Whether ``send_twin(sock)`` can open a twin (a ``SendPool`` can send ``sock``'s probes)."""
        return False

    def send_twin(self, sock: PacketSocket) -> PacketSocket:
        """A socket that sends as raw socket ``sock`` does (its kind, interface, bound source and hop limit), for a
        ``SendPool``'s thread, and receives nothing (``sock`` reads every answer)."""
        raise NotImplementedError

    def packet(self, iface: str, ethertype: int, *, what: str, hint: str | None = None) -> PacketSocket:
        """An ``AF_PACKET``/``SOCK_RAW`` socket bound to ``iface`` for ``ethertype`` (whole frames)."""
        raise NotImplementedError

    def capture(self, iface: str | None, *, cooked: bool, what: str = "recon sniff (live capture)") -> PacketSocket:
        """An ``AF_PACKET`` capture socket: ``SOCK_DGRAM`` when ``cooked`` (no link header), else ``SOCK_RAW``.

        With an interface it is opened with protocol 0, so nothing is queued until the
        caller binds it (after attaching its filter); without one it hears every
        interface from the start (protocol ETH_P_ALL).
        """
        raise NotImplementedError

    def route_source(self, dst: str, *, family: int = socket.AF_INET, interface: str | None = None,
                     source: str | None = None) -> str:
        """The source address the kernel would pick for ``dst`` (a UDP connect sends nothing). OSError: no route."""
        raise NotImplementedError

    def hardware(self, iface: str) -> tuple[int, bytes]:
        """(ARPHRD type, MAC) of ``iface`` in this thread's namespace; OSError when there is no such interface."""
        raise NotImplementedError

    def addresses6(self, iface: str) -> tuple[tuple[str, int, bool], ...]:
        """The usable IPv6 addresses of ``iface``: (address, prefix length, link-local?); tentative
        and duplicate (DAD-failed) addresses are left out. Empty when it has none."""
        raise NotImplementedError

    def local_ipv4(self) -> frozenset[str]:
        """This namespace's own IPv4 addresses (a sweep marks them ``self``); none unless a transport knows."""
        return frozenset()


class SystemTransport(Transport):
    """The kernel's sockets, in the calling thread's network namespace."""

    name = "system"

    def icmp(self, family: int, *, what: str, allow_dgram: bool = False, hint: str | None = None) -> tuple[PacketSocket, str]:
        proto = socket.IPPROTO_ICMPV6 if family == socket.AF_INET6 else socket.IPPROTO_ICMP
        try:
            return _open(family, socket.SOCK_RAW, proto, what, hint or privilege_hint(dgram_helps=allow_dgram)), "raw"
        except PrivilegeError:
            if not allow_dgram:
                raise
            try:
                return socket.socket(family, socket.SOCK_DGRAM, proto), "dgram"
            except PermissionError:  # ping_group_range does not allow us either
                raise PrivilegeError(what, hint=hint or privilege_hint(dgram_helps=True)) from None

    def raw_ip(self, family: int, proto: int, *, what: str, hint: str | None = None) -> PacketSocket:
        sock = _open(family, socket.SOCK_RAW, proto, what, hint)
        if proto == socket.IPPROTO_RAW and family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)  # implied by IPPROTO_RAW on Linux; explicit
        return sock

    def twins(self, sock: PacketSocket) -> bool:
        """A raw IPv4 socket of this thread's network namespace (a twin is opened in the calling thread's: a sweep
        iterated outside the namespace its sockets were opened in must not send from another), with libc's sendmmsg."""
        if not (isinstance(sock, socket.socket) and sock.type == socket.SOCK_RAW and sock.family == socket.AF_INET):
            return False
        return _libc() is not None and _same_namespace(sock)

    def send_twin(self, sock: PacketSocket) -> PacketSocket:
        from recon.bpf import attach_filter  # bpf imports this module

        assert isinstance(sock, socket.socket)
        twin = _open(sock.family, sock.type, sock.proto, "recon sweep (a send thread's socket)", None)
        try:
            big_buffers(twin, rcvbuf=0)
            device = sock.getsockopt(socket.SOL_SOCKET, _SO_BINDTODEVICE, 16).rstrip(b"\0")
            if device:
                twin.setsockopt(socket.SOL_SOCKET, _SO_BINDTODEVICE, device)
            host = sock.getsockname()[0]
            if host != "0.0.0.0":
                twin.bind((host, 0))
            twin.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, sock.getsockopt(socket.IPPROTO_IP, socket.IP_TTL))
            if sock.proto == socket.IPPROTO_ICMP:  # no copy of any ICMP message is even made for it
                twin.setsockopt(_SOL_RAW, _ICMP_FILTER, struct.pack("I", 0xFFFFFFFF))
            attach_filter(twin, [(0x06, 0, 0, 0)])  # BPF "ret #0": the copies a raw TCP/UDP socket gets are dropped
            twin.setblocking(False)
        except BaseException:
            twin.close()
            raise
        return twin

    def packet(self, iface: str, ethertype: int, *, what: str, hint: str | None = None) -> PacketSocket:
        sock = _open(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ethertype), what, hint)
        try:
            sock.bind((iface, ethertype))
        except OSError as exc:
            sock.close()
            if exc.errno in (errno.ENODEV, errno.ENXIO):
                raise InvalidOption("--interface", iface, "no such network interface here") from None
            raise
        return sock

    def capture(self, iface: str | None, *, cooked: bool, what: str = "recon sniff (live capture)") -> PacketSocket:
        kind = socket.SOCK_DGRAM if cooked else socket.SOCK_RAW
        return _open(socket.AF_PACKET, kind, 0 if iface else socket.htons(ETH_P_ALL), what, None)

    def route_source(self, dst: str, *, family: int = socket.AF_INET, interface: str | None = None,
                     source: str | None = None) -> str:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            if interface:
                try:
                    probe.setsockopt(socket.SOL_SOCKET, _SO_BINDTODEVICE, interface.encode())
                except OSError:
                    pass
            if source:
                probe.bind((source, 0))
            probe.connect((dst, 9))
            return str(probe.getsockname()[0])

    def hardware(self, iface: str) -> tuple[int, bytes]:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            res = fcntl.ioctl(probe.fileno(), _SIOCGIFHWADDR, struct.pack("16s16s", iface.encode()[:15], b""))
        hatype = struct.unpack_from("H", res, 16)[0]
        return hatype, bytes(res[18:24])

    def addresses6(self, iface: str) -> tuple[tuple[str, int, bool], ...]:
        # if_inet6 of this thread's namespace: "addr ifindex plen scope flags name" in hex
        try:
            lines = proc_net("if_inet6").read_text().splitlines()
        except OSError:
            return ()
        out = []
        for line in lines:
            f = line.split()
            if len(f) != 6 or f[5] != iface or int(f[4], 16) & (_IFA_F_TENTATIVE | _IFA_F_DADFAILED):
                continue
            addr = socket.inet_ntop(socket.AF_INET6, bytes.fromhex(f[0]))
            out.append((addr, int(f[2], 16), int(f[3], 16) == _IPV6_ADDR_LINKLOCAL))
        return tuple(out)

    def local_ipv4(self) -> frozenset[str]:
        """Every IPv4 address on an interface of this namespace, from SIOCGIFCONF (one ioctl, nothing sent)."""
        import array

        buf = array.array("B", bytes(_IFREQ_SIZE * 1024))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            res = fcntl.ioctl(probe.fileno(), _SIOCGIFCONF, struct.pack("iL", len(buf), buf.buffer_info()[0]))
        size = struct.unpack("iL", res)[0]
        data = buf.tobytes()[:size]
        return frozenset(socket.inet_ntoa(data[off + 20:off + 24]) for off in range(0, size, _IFREQ_SIZE))


_DEFAULT: Transport = SystemTransport()


def default_transport() -> Transport:
    """The transport library calls use when none is given: the kernel's."""
    return _DEFAULT


def require_raw(what: str, transport: Transport | None = None) -> None:
    """Fail early (before anything is sent) when raw sockets are not allowed."""
    sock, _ = (transport or _DEFAULT).icmp(socket.AF_INET, what=what)
    sock.close()


# --- batched I/O: sendmmsg(2) and recvmmsg(2) ----------------------------------------------------

_MSG_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0x40)
_MSGHDR_HEAD = "PI4xPNP"  # struct msghdr up to msg_controllen: name, namelen, iov, iovlen, control
_MMSGHDR = struct.Struct(_MSGHDR_HEAD + "Ni4xI4x")  # struct mmsghdr: msghdr (… controllen, flags), msg_len
_CONTROLLEN_AT = struct.calcsize(_MSGHDR_HEAD)  # msg_controllen's offset in an mmsghdr (a size_t, so pointer-aligned)
_IOVEC = struct.Struct("PN")
_CMSGHDR = struct.Struct("Nii")  # struct cmsghdr: len, level, type (then the data, aligned)
_SOCKADDR = 16  # a sockaddr_in's size: the address part of an IPv4 SendBatch slot
_SOCKADDR6 = 28  # a sockaddr_in6's: family, port, flow info, address, scope id
FAMILY4 = int.from_bytes(struct.pack("=H", socket.AF_INET), "big")  # sin_family as a '!H' field writes it (host order)
FAMILY6 = int.from_bytes(struct.pack("=H", socket.AF_INET6), "big")  # sin6_family, likewise
SEND_BATCH = 256  # the sweep engines' probes per sendmmsg(2): larger gains nothing measurable (bench/sweep.py)
RECV_BATCH = 64  # the sweep engines' datagrams per recvmmsg(2)


def scope_word(ifindex: int) -> int:
    """``ifindex`` as a ``!I`` field must be given to land in sin6_scope_id in host order (0 stays 0)."""
    return int.from_bytes(ifindex.to_bytes(4, sys.byteorder), "big")


# The one policy for a send the kernel refuses (SendBatch.send_all; the sweep engines and ndp.py send through it):
# * SEND_AGAIN: the queue is full (ENOBUFS from the device queue, EAGAIN from the socket's) or a signal came:
#   the caller drains its replies, and the same probe goes again a moment later. Still refused after
#   SEND_STALL seconds without one probe going: ReconEnvironmentError (a queue that never empties).
# * SEND_REFUSED: the kernel refused this probe and only it (no route to its destination, a firewall here,
#   broadcast without SO_BROADCAST, an IPv6 source or scope that does not fit it): the probe counts as
#   sent and failed (SweepStats.send_errors), and the batch goes on with the next one.
# * INTERFACE_LOST: the interface went away or down: ReconEnvironmentError, one line (exit 3).
# * Anything else is a bug or a surprise: the OSError is raised as it is.
SEND_AGAIN = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS, errno.EINTR})
SEND_REFUSED = frozenset({errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES, errno.EPERM, errno.EADDRNOTAVAIL,
                          errno.EINVAL})
INTERFACE_LOST = frozenset({errno.ENODEV, errno.ENXIO, errno.ENETDOWN})
SEND_STALL = 2.0


def interface_lost(exc: OSError) -> Exception:
    """An interface that went away or down mid-sweep as one line, exit 3 (as tcpdump ends cleanly when its
    interface goes), not an OSError traceback from a send or a receive; any other OS error as it is."""
    if exc.errno not in INTERFACE_LOST:
        return exc
    return ReconEnvironmentError(f"the sweep stopped: a network interface went away or down ({exc.strerror})",
                                 hint="check 'ip link', then sweep again")


@functools.cache
def _libc() -> Any:
    """libc's sendmmsg/recvmmsg through ctypes (imported on first use), or None where libc lacks them."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if not hasattr(libc, "sendmmsg") or not hasattr(libc, "recvmmsg"):
        return None
    for fn in (libc.sendmmsg, libc.recvmmsg):
        fn.restype = ctypes.c_int
    libc.sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    libc.recvmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
    return libc


def _address_of(buf: bytearray) -> int:
    import ctypes

    return ctypes.addressof(ctypes.c_char.from_buffer(buf))


class SendBatch:
    """Up to ``size`` datagrams written in place and handed to the kernel by one ``sendmmsg(2)``.

    Slot ``k`` starts at ``k * slot`` in ``area``: the destination's sockaddr (``head`` bytes) and then the
    packet, ``length(k)`` bytes of it. IPv4 (``family`` AF_INET): a ``sockaddr_in``, 16 bytes: family as
    ``FAMILY4`` in a ``!H`` field, port, address, 8 zero bytes. IPv6: a ``sockaddr_in6``, 28 bytes: family as
    ``FAMILY6``, port, flow info, the 16-byte address, and the scope id (the interface index, for link-local
    and multicast destinations) in host order (``scope_word``). The caller writes both with one
    ``struct.pack_into`` per packet, because a call per packet more costs speed; ``send(start, count)`` sends
    slots ``start .. start+count-1``, ``send_all(count, drain)`` sends the first ``count`` under the one send
    policy (``SEND_AGAIN``, above). With ``addressed=False`` (a bound AF_PACKET socket) the address part is
    ignored and the kernel sends to the binding.

    A socket that implements ``sendmmsg(messages)`` itself (``ReplaySocket``) gets the messages as
    ``(bytes, address)`` pairs; where libc has no sendmmsg, the messages go one ``sendto`` each.
    """

    def __init__(self, sock: PacketSocket, size: int = SEND_BATCH, mtu: int = 112, *, addressed: bool = True,
                 family: int = socket.AF_INET) -> None:
        self.sock, self.size, self.addressed, self.family = sock, size, addressed, family
        self.head = _SOCKADDR6 if family == socket.AF_INET6 else _SOCKADDR
        self.slot = self.head + mtu
        self.area = bytearray(size * self.slot)
        self._lengths = [0] * size
        self._own = getattr(sock, "sendmmsg", None)
        self._libc = None if self._own is not None else _libc()
        if self._libc is not None:
            base = _address_of(self.area)
            self._iov = bytearray(size * _IOVEC.size)
            iov = _address_of(self._iov)
            self._hdrs = bytearray(size * _MMSGHDR.size)
            for k in range(size):
                _IOVEC.pack_into(self._iov, k * _IOVEC.size, base + k * self.slot + self.head, 0)
                _MMSGHDR.pack_into(self._hdrs, k * _MMSGHDR.size, base + k * self.slot if addressed else 0,
                                   self.head if addressed else 0, iov + k * _IOVEC.size, 1, 0, 0, 0, 0)
            self._hdr_base = _address_of(self._hdrs)
            self._fd = sock.fileno()

    def set_length(self, length: int, start: int = 0, stop: int | None = None) -> None:
        """The packet length of slots ``start .. stop-1`` (all by default)."""
        for k in range(start, self.size if stop is None else stop):
            if self._lengths[k] != length:
                self._lengths[k] = length
                if self._libc is not None:
                    struct.pack_into("N", self._iov, k * _IOVEC.size + struct.calcsize("P"), length)

    def length(self, k: int) -> int:
        return self._lengths[k]

    def put(self, k: int, data: bytes | bytearray) -> None:
        """Slot ``k``'s packet is ``data`` (its length set too): for packets built whole, not patched in place."""
        if len(data) > self.slot - self.head:
            raise ValueError(f"a {len(data)}-byte packet does not fit a {self.slot - self.head}-byte slot")
        off = k * self.slot + self.head
        self.area[off:off + len(data)] = data
        self.set_length(len(data), k, k + 1)

    def packet(self, k: int) -> bytearray:
        """A copy of slot ``k``'s packet."""
        off = k * self.slot + self.head
        return self.area[off:off + self._lengths[k]]

    def address(self, k: int) -> tuple[str, int] | tuple[str, int, int, int] | None:
        """Slot ``k``'s destination as sendto takes it (None when the batch is not addressed)."""
        if not self.addressed:
            return None
        off = k * self.slot
        port = int.from_bytes(self.area[off + 2:off + 4], "big")
        if self.family == socket.AF_INET6:
            flow, scope = struct.unpack_from("=I16xI", self.area, off + 4)
            return socket.inet_ntop(socket.AF_INET6, self.area[off + 8:off + 24]), port, socket.ntohl(flow), scope
        return socket.inet_ntoa(self.area[off + 4:off + 8]), port

    def copy_from(self, other: SendBatch, count: int) -> None:
        """Slots ``0 .. count-1`` of ``other`` (same geometry), addresses, packets and lengths, into this batch."""
        end = count * self.slot
        self.area[:end] = other.area[:end]
        lengths = other._lengths
        for k in range(count):
            if self._lengths[k] != lengths[k]:
                self.set_length(lengths[k], k, k + 1)

    def send(self, start: int, count: int, fd: int | None = None) -> int:
        """Send slots ``start ..``; how many went (at least one). OSError: the first of them failed (as sendto fails).
        ``fd``: through another socket than the batch's own (``SendPool``'s twins; libc's sendmmsg only)."""
        if count <= 0:
            return 0
        if self._own is not None:
            return int(self._own([(bytes(self.packet(k)), self.address(k)) for k in range(start, start + count)]))
        if self._libc is None:
            data, address = self.packet(start), self.address(start)
            if address is None:
                self.sock.send(data)
            else:
                self.sock.sendto(data, address)
            return 1
        sent = self._libc.sendmmsg(self._fd if fd is None else fd, self._hdr_base + start * _MMSGHDR.size, count, 0)
        if sent < 0:
            import ctypes

            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return int(sent)

    def send_all(self, count: int, drain: Callable[[], object], fd: int | None = None) -> int:
        """Send slots ``0 .. count-1`` under the send policy (``SEND_AGAIN``, above): while the kernel's queue is
        full, ``drain()`` (read the replies waiting) and try again; a probe the kernel refuses is skipped. How many
        it refused (each counts as sent and failed)."""
        done = refused = 0
        stalled: float | None = None
        while done < count:
            try:
                done += self.send(done, count - done, fd)
                stalled = None
            except OSError as exc:
                if exc.errno in SEND_AGAIN:
                    now = time.monotonic()
                    if stalled is None:
                        stalled = now
                    elif now - stalled > SEND_STALL:
                        raise ReconEnvironmentError(f"the kernel refused to queue a probe for {SEND_STALL:g} s "
                                                    f"({exc.strerror})", hint="check 'ip link' and the interface's queue") from None
                    drain()
                    time.sleep(0.0005)
                elif exc.errno in SEND_REFUSED:
                    refused += 1
                    done += 1
                else:
                    raise interface_lost(exc) from None
        return refused


MAX_SEND_THREADS = 2  # more did not pay on the 2-core box the send path was measured on (bench/sweep.py --send)
POOL_MIN_PROBES = 4 * 256  # below this a sweep's probes go out inline: the threads' start would cost more than they save


def send_threads(probes: int) -> int:
    """How many threads should send a sweep of ``probes`` probes (``SendPool``): 0 (inline) when the process may
    run on one CPU only (``taskset``) or the sweep is small, else one per CPU up to ``MAX_SEND_THREADS``."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return 0 if cpus < 2 or probes < POOL_MIN_PROBES else min(cpus, MAX_SEND_THREADS)


class SendPool:
    """A sweep's send batches handed to ``threads`` sender threads, each sending through its own twin of the
    batch's socket (``Transport.send_twin``: same kind, interface and bound source, and it hears nothing).

    The kernel does a probe's whole trip inside the sending call (on a veth, the peer's forwarding too), about
    2.4 us a probe in the lab against ~1 us of Python to write it, and one socket serialises its callers. Two
    sockets on two threads halve that kernel time on two CPUs; the GIL is free while sendmmsg runs (ctypes).
    ``submit`` copies the caller's batch into a free buffer of the pool (the caller goes on writing its own) and
    queues it; ``before()`` runs on the sender thread just before the send (a sweep records its send times
    there). ``finish(drain)`` waits until everything queued has gone, draining meanwhile, and returns how many
    probes the kernel refused (the one send policy, ``SendBatch.send_all``; a sender's error is raised there).
    """

    def __init__(self, twin: Callable[[PacketSocket], PacketSocket], threads: int, buffers: int = 3) -> None:
        self._twin, self._buffers = twin, buffers
        self._twins: list[dict[int, int]] = [{} for _ in range(threads)]  # per thread: id(socket) -> its twin's fd
        self._socks: list[PacketSocket] = []
        self._free: dict[int, deque[SendBatch]] = {}
        self._work: queue.SimpleQueue[tuple[SendBatch, int, int, Callable[[], None]] | None] = queue.SimpleQueue()
        self._returned = threading.Condition()
        self._queued = self._done = self._refused = 0
        self._error: BaseException | None = None
        self._discard = False
        self._discarded = 0
        self._threads = [threading.Thread(target=self._run, args=(t,), name=f"recon-send-{t}", daemon=True)
                         for t in range(threads)]
        for thread in self._threads:
            thread.start()

    def submit(self, batch: SendBatch, count: int, before: Callable[[], None], drain: Callable[[], object]) -> None:
        """Queue slots ``0 .. count-1`` of ``batch`` for a sender thread (the batch itself is free again at once)."""
        self._raise_error()
        key = id(batch.sock)
        if key not in self._free:
            self._open_twins(batch)
        free = self._free[key]
        while not free:
            self._wait_returned(drain)
        buf = free.popleft()
        buf.copy_from(batch, count)
        self._queued += 1
        self._work.put((buf, key, count, before))

    def finish(self, drain: Callable[[], object]) -> int:
        """Wait until every queued batch has gone (draining meanwhile), then drain once more, as a batch sent inline
        is drained right after it: on a veth the answers are queued by the time sendmmsg returns. The probes refused
        since the last call."""
        while self._done < self._queued:
            self._wait_returned(drain)
        self._raise_error()
        drain()
        refused, self._refused = self._refused, 0
        return refused

    def close(self) -> int:
        """End the threads; what is still queued (a sweep ended by an error or a stop mid-pass) is not sent. How
        many probes that left unsent."""
        self._discard = True
        for _ in self._threads:
            self._work.put(None)
        for thread in self._threads:
            thread.join()
        for sock in self._socks:
            sock.close()
        self._socks = []
        return self._discarded

    def _open_twins(self, batch: SendBatch) -> None:
        key = id(batch.sock)
        for fds in self._twins:
            twin = self._twin(batch.sock)
            self._socks.append(twin)
            fds[key] = twin.fileno()
        mtu = batch.slot - batch.head
        self._free[key] = deque(SendBatch(batch.sock, batch.size, mtu, addressed=batch.addressed, family=batch.family)
                                for _ in range(self._buffers))

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _wait_returned(self, drain: Callable[[], object]) -> None:
        self._raise_error()
        if not any(thread.is_alive() for thread in self._threads):
            raise RuntimeError("recon's send threads have ended with probes still queued")
        drain()
        with self._returned:
            self._returned.wait(0.0005)

    def _run(self, index: int) -> None:
        fds = self._twins[index]
        while True:
            item = self._work.get()
            if item is None:
                return
            buf, key, count, before = item
            refused, error, discarded = 0, None, self._discard
            try:
                if not discarded:
                    before()
                    refused = buf.send_all(count, _no_drain, fds[key])
            except BaseException as exc:  # handed to the sweep's thread, raised at its next submit or finish
                error = exc
            with self._returned:
                if error is not None and self._error is None:
                    self._error = error
                self._discarded += count if discarded else 0
                self._refused += refused
                self._free[key].append(buf)
                self._done += 1
                self._returned.notify_all()


def _same_namespace(sock: socket.socket) -> bool:
    """Whether ``sock`` lives in the calling thread's network namespace: by the namespace cookie (Linux 5.14), else
    by the inode of the namespace ``SIOCGSKNS`` opens (Linux 4.9, CAP_NET_ADMIN); False when neither can tell."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as here:
        try:
            return bool(sock.getsockopt(socket.SOL_SOCKET, _SO_NETNS_COOKIE, 8) ==
                        here.getsockopt(socket.SOL_SOCKET, _SO_NETNS_COOKIE, 8))
        except OSError:
            pass
    try:
        ns = fcntl.ioctl(sock.fileno(), _SIOCGSKNS)
    except OSError:
        return False
    try:
        return os.fstat(ns).st_ino == os.stat("/proc/thread-self/ns/net").st_ino
    except OSError:
        return False
    finally:
        os.close(ns)


def _no_drain() -> None:
    """A sender thread never reads: the sweep's own thread drains while it waits (``SendPool.finish``)."""


def ancillary(control: bytes) -> list[tuple[int, int, bytes]]:
    """The control messages of a ``recvmsg``/``recvmmsg`` control buffer as ``recvmsg`` lists them: (level, type, data)."""
    out: list[tuple[int, int, bytes]] = []
    at, align = 0, struct.calcsize("N")
    while at + _CMSGHDR.size <= len(control):
        length, level, kind = _CMSGHDR.unpack_from(control, at)
        if length < _CMSGHDR.size or at + length > len(control):
            break
        out.append((level, kind, bytes(control[at + _CMSGHDR.size:at + length])))
        at += (length + align - 1) & -align
    return out


def stamp_receive_times(sock: PacketSocket) -> bool:
    """Turn on SO_TIMESTAMPNS: every datagram then comes with the kernel's receive time as a control message
    (``received_ns`` reads it). False where the kernel refuses: answers are then timed when they are read."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


_TIMESPEC = struct.Struct("qq")  # struct timespec: seconds, nanoseconds
STAMP_SPACE = socket.CMSG_SPACE(_TIMESPEC.size)  # the control buffer room for one receive time (RecvBatch's control=)
_STAMP_CMSG = struct.pack("ii", socket.SOL_SOCKET, _SO_TIMESTAMPNS)  # its level and type (SCM_TIMESTAMPNS), as in the buffer
_CMSG_KIND = slice(_CMSGHDR.size - len(_STAMP_CMSG), _CMSGHDR.size)  # where the first control message's level and type lie


def received_ns(control: bytes) -> int:
    """The kernel's receive time (SO_TIMESTAMPNS: wall-clock ns since the epoch) in a control buffer as ``RecvBatch``
    returns it, 0 when it holds none. The kernel writes it first, before the IP-level messages (hop limit, TTL)."""
    if control[_CMSG_KIND] == _STAMP_CMSG and len(control) >= _CMSGHDR.size + _TIMESPEC.size:  # as the kernel lays it out
        seconds, nanoseconds = _TIMESPEC.unpack_from(control, _CMSGHDR.size)
        return int(seconds * 1_000_000_000 + nanoseconds)
    for level, kind, data in ancillary(control):
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            return int(seconds * 1_000_000_000 + nanoseconds)
    return 0


def _control_bytes(anc: Iterable[tuple[int, int, bytes]]) -> bytes:
    """``recvmsg``'s ancillary list as the kernel lays it out in a control buffer (the inverse of ``ancillary``)."""
    out = bytearray()
    for level, kind, data in anc:
        out += _CMSGHDR.pack(_CMSGHDR.size + len(data), level, kind) + data
        out += bytes(-len(out) % struct.calcsize("N"))
    return bytes(out)


def _sockaddr_bytes(address: Any) -> bytes:
    """A Python socket address as the kernel writes it into msg_name (IPv4 and IPv6; other families: empty)."""
    try:
        return _sockaddr_ip(address)
    except (OSError, ValueError, TypeError):  # an AF_PACKET address, ('eth0', 0x86dd)
        return b""


def _sockaddr_ip(address: Any) -> bytes:
    if isinstance(address, tuple) and len(address) == 4 and isinstance(address[0], str):
        host, port, flow, scope = address
        packed = socket.inet_pton(socket.AF_INET6, host.partition("%")[0])
        return struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", port, flow) + packed + struct.pack("=I", scope)
    if isinstance(address, tuple) and len(address) == 2 and isinstance(address[0], str):
        return struct.pack("=H", socket.AF_INET) + struct.pack("!H", address[1]) + socket.inet_aton(address[0]) + bytes(8)
    return b""


class RecvBatch:
    """Reads up to ``size`` waiting datagrams with one ``recvmmsg(2)`` (non-blocking); ``recv()`` returns them
    as bytes, ``[]`` when none waits. With ``name`` and ``control`` (buffer sizes: a raw IPv6 socket reads no IP
    header, so its source and hop limit come from there), ``recv_msgs()`` returns ``(data, sockaddr bytes, control
    bytes)`` for each: the source as the kernel wrote it (a ``sockaddr_in6``: address at 8..24, scope id at 24..28)
    and the control messages (``ancillary()`` lists them). A socket with its own ``recvmmsg(size)``
    (``ReplaySocket``) is asked directly (``recvmsg`` for ``recv_msgs``, its answers laid out as the kernel's);
    without libc's recvmmsg it reads one datagram per call."""

    def __init__(self, sock: PacketSocket, size: int = RECV_BATCH, bufsize: int = 2048, *, name: int = 0, control: int = 0) -> None:
        self.sock, self.size, self.bufsize, self.name, self.control = sock, size, bufsize, name, control
        self._own = getattr(sock, "recvmmsg", None)
        self._libc = None if self._own is not None else _libc()
        if self._libc is not None:
            self.area = bytearray(size * bufsize)
            self._names = bytearray(max(1, size * name))
            self._controls = bytearray(max(1, size * control))
            base, names, controls = _address_of(self.area), _address_of(self._names), _address_of(self._controls)
            self._iov = bytearray(size * _IOVEC.size)
            iov = _address_of(self._iov)
            self._hdrs = bytearray(size * _MMSGHDR.size)
            for k in range(size):
                _IOVEC.pack_into(self._iov, k * _IOVEC.size, base + k * bufsize, bufsize)
                _MMSGHDR.pack_into(self._hdrs, k * _MMSGHDR.size, names + k * name if name else 0, name,
                                   iov + k * _IOVEC.size, 1, controls + k * control if control else 0, control, 0, 0)
            self._fresh = bytes(self._hdrs)  # the kernel writes back namelen, controllen and flags: reset after each read
            self._hdr_base = _address_of(self._hdrs)
            self._fd = sock.fileno()
            words = memoryview(self._hdrs).cast("I")
            step = _MMSGHDR.size // 4
            self._lengths = words[(_MMSGHDR.size - 8) // 4::step]  # msg_len of each mmsghdr
            self._namelens = words[struct.calcsize("P") // 4::step]  # msg_namelen
            pointer = struct.calcsize("P")  # msg_controllen is a size_t: a pointer's size here
            self._controllens = memoryview(self._hdrs).cast("P")[_CONTROLLEN_AT // pointer::_MMSGHDR.size // pointer]
            self._view = memoryview(self.area)
            self._offsets = range(0, size * bufsize, bufsize)

    def _read(self) -> int:
        """One recvmmsg(2): how many datagrams it read (0: none waits)."""
        got = self._libc.recvmmsg(self._fd, self._hdr_base, self.size, _MSG_DONTWAIT, None) if self._libc else 0
        if got <= 0:
            if got < 0:
                import ctypes

                err = ctypes.get_errno()
                if err not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                    raise OSError(err, os.strerror(err))
            return 0
        return int(got)

    def recv(self) -> list[bytes]:
        if self._own is not None:
            return list(self._own(self.size))
        if self._libc is None:
            try:
                return [self.sock.recv(self.bufsize, _MSG_DONTWAIT)]
            except (BlockingIOError, InterruptedError):
                return []
        got = self._read()
        view = self._view
        return [bytes(view[at:at + n]) for at, n in zip(self._offsets, self._lengths[:got].tolist(), strict=False)]

    def recv_msgs(self) -> list[tuple[bytes, bytes, bytes]]:
        """Every waiting datagram (up to ``size``) with its source sockaddr and control messages, as bytes."""
        if self._libc is None:
            out: list[tuple[bytes, bytes, bytes]] = []
            while len(out) < self.size:
                try:
                    data, anc, _, address = self.sock.recvmsg(self.bufsize, self.control, _MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    break
                source = _sockaddr_bytes(address)[:self.name] if self.name else b""
                out.append((data, source, _control_bytes(anc)[:self.control]))
            return out
        got = self._read()
        if not got:
            return []
        view, names, controls, name, control = self._view, self._names, self._controls, self.name, self.control
        out = [(bytes(view[at:at + n]), bytes(names[k * name:k * name + nl]), bytes(controls[k * control:k * control + cl]))
               for k, (at, n, nl, cl) in enumerate(zip(self._offsets, self._lengths[:got].tolist(), self._namelens[:got].tolist(),
                                                       self._controllens[:got].tolist(), strict=False))]
        self._hdrs[:got * _MMSGHDR.size] = self._fresh[:got * _MMSGHDR.size]
        return out


# --- replay --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sent:
    """One packet handed to a replay socket: the socket's kind (``icmp4``, ``icmp6``, ``raw4``,
    ``raw6``, ``packet``), the bytes as sent, the destination given (None for ``send``) and when."""

    kind: str
    data: bytes
    address: Any
    dgram: bool
    time: float


Responder = Callable[["ReplaySocket", Sent], Iterable[bytes]]


class ReplaySocket:
    """A socket whose wire is a responder: sends are recorded, replies are queued for reading.

    ``fileno()`` is the read end of a pipe that holds one byte per queued packet, so
    select/poll see it readable exactly when a packet waits, and a non-blocking read of
    an empty queue raises BlockingIOError as the kernel's does. Queued replies carry the
    ancillary data the real socket would give (``SO_TIMESTAMPNS``, TTL/hop limit) when
    the caller turned those options on.
    """

    def __init__(self, transport: ReplayTransport, kind: str, family: int, *, dgram: bool = False) -> None:
        self.transport, self.kind, self.family, self.dgram = transport, kind, family, dgram
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)
        self._queue: deque[tuple[bytes, int, int | None, Any]] = deque()  # (data, stamp ns, ttl, source)
        self._errqueue: deque[tuple[bytes, list[tuple[int, int, bytes]], Any]] = deque()
        self._timeout: float | None = None  # None: blocking; 0: non-blocking
        self.options: dict[tuple[int, int], int | bytes] = {}
        self.bound: Any = None
        self.closed = False
        self._lock = threading.Lock()

    # -- what the library calls ---------------------------------------------------------
    def fileno(self) -> int:
        return self._r

    def sendto(self, data: bytes | bytearray | memoryview, address: Any, /) -> int:
        self.transport.send_calls += 1
        return self._send(bytes(data), address)

    def send(self, data: bytes | bytearray | memoryview, flags: int = 0, /) -> int:
        self.transport.send_calls += 1
        return self._send(bytes(data), None)

    def sendmmsg(self, messages: Iterable[tuple[bytes, Any]]) -> int:
        """What ``SendBatch`` calls: every ``(data, address)`` sent in order (address None: ``send``); how many.
        As sendmmsg(2): a refusal after the first message ends the call with the count so far."""
        self.transport.send_calls += 1
        count = 0
        for data, address in messages:
            try:
                self._send(bytes(data), address)
            except OSError:
                if count:
                    return count
                raise
            count += 1
        return count

    def recvmmsg(self, size: int) -> list[bytes]:
        """What ``RecvBatch`` calls: up to ``size`` queued packets, without waiting."""
        out: list[bytes] = []
        while len(out) < size:
            try:
                out.append(self._next(socket.MSG_DONTWAIT)[0])
            except BlockingIOError:
                break
        return out

    def _send(self, data: bytes, address: Any) -> int:
        if self.closed:
            raise OSError(errno.EBADF, "socket is closed")
        refused = self.transport.refuse(self, data, address) if self.transport.refuse is not None else 0
        if refused:
            raise OSError(refused, os.strerror(refused))
        sent = Sent(self.kind, data, address, self.dgram, time.monotonic())
        self.transport.sent.append(sent)
        for reply in self.transport.respond(self, sent):
            self.deliver(reply)
        return len(data)

    def _next(self, flags: int) -> tuple[bytes, int, int | None, Any]:
        timeout = 0.0 if flags & socket.MSG_DONTWAIT else self._timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                if self._queue:
                    os.read(self._r, 1)
                    return self._queue.popleft()
            if self.closed:
                raise OSError(errno.EBADF, "socket is closed")
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                if timeout == 0:
                    raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
                raise TimeoutError("timed out")
            select.select([self._r], [], [], left)

    def recv(self, bufsize: int, flags: int = 0, /) -> bytes:
        return self._next(flags)[0][:bufsize]

    def recvmsg(self, bufsize: int, ancbufsize: int = 0, flags: int = 0, /) -> tuple[bytes, list[tuple[int, int, bytes]], int, Any]:
        if flags & _MSG_ERRQUEUE:
            with self._lock:
                if not self._errqueue:
                    raise BlockingIOError(errno.EAGAIN, "no queued errors")
                edata, eanc, addr = self._errqueue.popleft()
            return edata, eanc, 0, addr
        data, stamp, ttl, src = self._next(flags)
        anc: list[tuple[int, int, bytes]] = []
        if ancbufsize and self.options.get((socket.SOL_SOCKET, _SO_TIMESTAMPNS)):
            anc.append((socket.SOL_SOCKET, _SO_TIMESTAMPNS, struct.pack("=qq", stamp // 1_000_000_000, stamp % 1_000_000_000)))
        if ancbufsize and ttl is not None:
            if self.family == socket.AF_INET6 and self.options.get((socket.IPPROTO_IPV6, _IPV6_RECVHOPLIMIT)):
                anc.append((socket.IPPROTO_IPV6, _IPV6_HOPLIMIT, struct.pack("=i", ttl)))
            elif self.family == socket.AF_INET and self.options.get((socket.IPPROTO_IP, _IP_RECVTTL)):
                anc.append((socket.IPPROTO_IP, socket.IP_TTL, struct.pack("=i", ttl)))
        return data[:bufsize], anc, 0, src if src is not None else self.bound

    def setsockopt(self, level: int, optname: int, value: int | bytes, /) -> None:
        self.options[(level, optname)] = value

    def getsockopt(self, level: int, optname: int, /) -> int:
        value = self.options.get((level, optname), 0)
        return value if isinstance(value, int) else 0

    def getsockname(self) -> Any:
        if self.bound is not None and not self.dgram:
            return self.bound
        ident = self.transport.dgram_ident
        return ("::", ident, 0, 0) if self.family == socket.AF_INET6 else ("0.0.0.0", ident)

    def bind(self, address: Any, /) -> None:
        self.bound = address

    def setblocking(self, flag: bool, /) -> None:
        self._timeout = None if flag else 0.0

    def settimeout(self, value: float | None, /) -> None:
        self._timeout = value

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self._r)
            os.close(self._w)

    # -- what the replay side calls ----------------------------------------------------------
    def deliver(self, packet: bytes, *, ttl: int | None = None, source: Any = None, stamp_ns: int | None = None) -> None:
        """Queue ``packet`` for reading, shaped as this socket's kind reads it.

        ``packet`` is what was on the wire: a whole IPv4/IPv6 packet for IP sockets, a
        whole frame for packet sockets. IPv4 raw sockets read the IP header too;
        datagram ICMP sockets and IPv6 sockets read from the ICMP header on, with the
        TTL / hop limit (and the source address) as ancillary data.
        """
        if self.closed or self.transport.drop():
            return
        data = packet
        if self.kind != "packet" and packet:
            version = packet[0] >> 4
            if version == 4 and len(packet) >= 20:
                ttl = packet[8] if ttl is None else ttl
                source = source or (socket.inet_ntoa(packet[12:16]), 0)
                if self.dgram:
                    data = packet[(packet[0] & 15) * 4:]
            elif version == 6 and len(packet) >= 40:
                ttl = packet[7] if ttl is None else ttl
                source = source or (socket.inet_ntop(socket.AF_INET6, packet[8:24]), 0, 0, 0)
                data = packet[40:]
        with self._lock:
            try:
                os.write(self._w, b"x")
            except BlockingIOError:  # 64 Ki packets unread: lost, as in an overflowing kernel buffer
                self.transport.overflows += 1
                return
            self._queue.append((data, stamp_ns or time.time_ns(), ttl, source))

    def deliver_error(self, data: bytes, ancdata: Sequence[tuple[int, int, bytes]], address: Any = None) -> None:
        """Queue an error-queue record (``IP_RECVERR``): what ``recvmsg(MSG_ERRQUEUE)`` returns."""
        with self._lock:
            self._errqueue.append((data, list(ancdata), address))


class ReplayTransport(Transport):
    """A transport whose network is recorded packets (see ``Recording``) or any responder.

    ``responder(sock, sent)`` returns the packets (whole IP packets or frames) that answer
    ``sent``; ``loss`` drops that fraction of answers (seeded by ``seed``), so retries and
    loss statistics can be tested without a network. ``sent`` lists every packet sent, and
    ``send_calls`` counts the calls that sent them (``sendmmsg`` is one call for a batch).
    ``refuse(sock, data, address)`` plays the kernel refusing a send: an errno (the send raises
    it, as the kernel's would, and nothing is recorded) or 0.
    """

    name = "replay"

    def __init__(self, responder: Responder | None = None, *, loss: float = 0.0, seed: int = 0,
                 source: str = "198.18.0.2", source6: str = "2001:db8::2", interfaces: dict[str, tuple[int, bytes]] | None = None,
                 dgram_only: bool = False, addresses6: dict[str, tuple[tuple[str, int, bool], ...]] | None = None,
                 refuse: Callable[[ReplaySocket, bytes, Any], int] | None = None) -> None:
        self.responder, self.refuse = responder, refuse
        self.loss = loss
        self._rng = random.Random(seed)
        self.source, self.source6 = source, source6
        self.interfaces = interfaces or {"eth0": (1, bytes.fromhex("025245430002"))}
        self.dgram_only = dgram_only
        # each Ethernet interface holds source6/64 and its EUI-64 link-local, unless told otherwise
        self.interface_addresses6 = addresses6 if addresses6 is not None else {
            name: ((source6, 64, False), (_eui64_link_local(mac), 64, True)) for name, (hatype, mac) in self.interfaces.items()
            if hatype == 1}
        self.dgram_ident = 0x4242
        self.sent: list[Sent] = []
        self.send_calls = 0
        self.overflows = 0
        self.sockets: list[ReplaySocket] = []

    def drop(self) -> bool:
        return self.loss > 0 and self._rng.random() < self.loss

    def respond(self, sock: ReplaySocket, sent: Sent) -> Iterable[bytes]:
        return self.responder(sock, sent) if self.responder is not None else ()

    def _socket(self, kind: str, family: int, *, dgram: bool = False) -> ReplaySocket:
        sock = ReplaySocket(self, kind, family, dgram=dgram)
        self.sockets.append(sock)
        return sock

    def icmp(self, family: int, *, what: str, allow_dgram: bool = False, hint: str | None = None) -> tuple[PacketSocket, str]:
        kind = "icmp6" if family == socket.AF_INET6 else "icmp4"
        if self.dgram_only:
            if not allow_dgram:
                raise PrivilegeError(what, hint=hint or privilege_hint())
            return self._socket(kind, family, dgram=True), "dgram"
        return self._socket(kind, family), "raw"

    def raw_ip(self, family: int, proto: int, *, what: str, hint: str | None = None) -> PacketSocket:
        if self.dgram_only:
            raise PrivilegeError(what, hint=hint or privilege_hint())
        return self._socket("raw6" if family == socket.AF_INET6 else "raw4", family)

    def packet(self, iface: str, ethertype: int, *, what: str, hint: str | None = None) -> PacketSocket:
        if self.dgram_only:
            raise PrivilegeError(what, hint=hint or privilege_hint())
        if iface not in self.interfaces:
            raise InvalidOption("--interface", iface, "no such network interface here")
        sock = self._socket("packet", socket.AF_PACKET)
        sock.bind((iface, ethertype))
        return sock

    def capture(self, iface: str | None, *, cooked: bool, what: str = "recon sniff (live capture)") -> PacketSocket:
        if self.dgram_only:
            raise PrivilegeError(what)
        return self._socket("packet", socket.AF_PACKET, dgram=cooked)

    def route_source(self, dst: str, *, family: int = socket.AF_INET, interface: str | None = None,
                     source: str | None = None) -> str:
        return source or (self.source6 if family == socket.AF_INET6 or ":" in dst else self.source)

    def local_ipv4(self) -> frozenset[str]:
        return frozenset({self.source})

    def hardware(self, iface: str) -> tuple[int, bytes]:
        try:
            return self.interfaces[iface]
        except KeyError:
            raise OSError(errno.ENODEV, "No such device", iface) from None

    def addresses6(self, iface: str) -> tuple[tuple[str, int, bool], ...]:
        return self.interface_addresses6.get(iface, ())


def _eui64_link_local(mac: bytes) -> str:
    """The link-local address the kernel derives from ``mac`` (RFC 4291 appendix A)."""
    eui = bytes([mac[0] ^ 0x02]) + mac[1:3] + b"\xff\xfe" + mac[3:6]
    return socket.inet_ntop(socket.AF_INET6, b"\xfe\x80" + bytes(6) + eui)


# --- recordings: answers taken from a capture, fitted to the probe that was sent ---------------------


def _csum(data: bytes | bytearray) -> int:
    if len(data) % 2:
        data = bytes(data) + b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def _icmp6_csum(src: bytes, dst: bytes, msg: bytes | bytearray) -> int:
    return _csum(src + dst + struct.pack("!I3xB", len(msg), 58) + bytes(msg))


@dataclass
class Recording:
    """Recorded answers from a capture, keyed by the address they answer for.

    ``from_pcap`` keeps every ICMP/ICMPv6 echo or timestamp reply (keyed by its source),
    every ICMP error (keyed by the destination of the probe it quotes) and every ARP reply
    (keyed by the sender's IPv4 address). As a responder it answers a probe to address A
    with A's recorded answers, rewritten to fit the probe the way the real peer would: an
    echo reply gets the probe's id, seq and payload; an error quotes the probe's IP header
    and first 8 bytes; both get correct checksums. Everything else (TTL, IP id, options,
    the reporting router, codes, MACs) stays as recorded.
    """

    replies: dict[str, list[bytes]] = field(default_factory=dict)
    errors: dict[str, list[bytes]] = field(default_factory=dict)
    arp: dict[str, list[bytes]] = field(default_factory=dict)

    @classmethod
    def from_pcap(cls, path: str | os.PathLike[str]) -> Recording:
        from recon.decode import LINKTYPE_ETHERNET
        from recon.pcap import read_frames

        rec = cls()
        for frame in read_frames(str(path)):
            data = bytes(frame.data)
            if frame.linktype in (113, 276):  # Linux cooked v1/v2: make it the Ethernet frame it was
                head = 16 if frame.linktype == 113 else 20
                if len(data) < head:
                    continue
                proto = data[14:16] if frame.linktype == 113 else data[0:2]
                mac = data[6:12] if frame.linktype == 113 else data[12:18]
                data = b"\xff" * 6 + mac + proto + data[head:]
            elif frame.linktype not in (LINKTYPE_ETHERNET, 101, 228, 229):  # Ethernet, raw IP, IPv4, IPv6
                continue
            if frame.linktype not in (101, 228, 229):
                if len(data) >= 42 and data[12:14] == b"\x08\x06" and data[20:22] == b"\x00\x02":
                    rec.arp.setdefault(socket.inet_ntoa(data[28:32]), []).append(data)
                    continue
                if data[12:14] not in (b"\x08\x00", b"\x86\xdd"):
                    continue
                data = data[14:]
            rec.add_packet(data)
        return rec

    def add_packet(self, packet: bytes) -> None:
        """File one IP packet under the address it answers for (ignored when it answers nothing)."""
        if not packet:
            return
        if packet[0] >> 4 == 4 and len(packet) >= 28 and packet[9] == 1:
            ihl = (packet[0] & 15) * 4
            itype = packet[ihl]
            if itype in (0, 14, 18):
                self.replies.setdefault(socket.inet_ntoa(packet[12:16]), []).append(packet)
            elif itype in (3, 11, 12) and len(packet) >= ihl + 8 + 20:
                quoted = packet[ihl + 8:]
                self.errors.setdefault(socket.inet_ntoa(quoted[16:20]), []).append(packet)
        elif packet[0] >> 4 == 6 and len(packet) >= 48 and packet[6] == 58:
            itype = packet[40]
            if itype == 129:
                self.replies.setdefault(socket.inet_ntop(socket.AF_INET6, packet[8:24]), []).append(packet)
            elif itype in (1, 2, 3, 4) and len(packet) >= 48 + 40:
                self.errors.setdefault(socket.inet_ntop(socket.AF_INET6, packet[48 + 24:48 + 40]), []).append(packet)

    def __call__(self, sock: ReplaySocket, sent: Sent) -> list[bytes]:
        if sent.kind == "packet":
            return self._arp_answers(sent.data)
        if sent.kind not in ("icmp4", "icmp6", "raw4", "raw6") or sent.address is None:
            return []
        dst = str(sent.address[0]).split("%")[0]
        local = sock.transport.route_source(dst)
        replies, errors = self.replies.get(dst, []), self.errors.get(dst, [])
        if errors and (not replies or self._expires(sock, replies[0])):
            return [fit_error(errors[0], sent.data, dst, local)]
        fitted = fit_reply(replies[0], sent.data, local) if replies else None
        return [fitted] if fitted is not None else []

    @staticmethod
    def _expires(sock: ReplaySocket, reply: bytes) -> bool:
        """True when the socket's TTL / hop limit is too small to reach the host that sent ``reply``
        (its distance: the usual initial TTL above the TTL it arrived with)."""
        v6 = reply[0] >> 4 == 6
        key = (socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS) if v6 else (socket.IPPROTO_IP, socket.IP_TTL)
        ttl = sock.options.get(key)
        if not isinstance(ttl, int):
            return False
        arrived = reply[7] if v6 else reply[8]
        initial = next(t for t in (64, 128, 255) if t >= arrived)
        return ttl <= initial - arrived

    def _arp_answers(self, frame: bytes) -> list[bytes]:
        if len(frame) < 42 or frame[12:14] != b"\x08\x06" or frame[20:22] != b"\x00\x01":
            return []
        target = socket.inet_ntoa(frame[38:42])
        out = []
        for reply in self.arp.get(target, [])[:1]:
            r = bytearray(reply)
            r[0:6] = frame[6:12]  # to the asker
            r[32:38] = frame[22:28]
            r[38:42] = frame[28:32]
            out.append(bytes(r))
        return out


def fit_reply(recorded: bytes, probe: bytes, local: str) -> bytes | None:
    """A recorded echo/timestamp reply rewritten to answer ``probe`` (the ICMP message we sent)."""
    probe = probe[(probe[0] & 15) * 4:] if probe and probe[0] >> 4 == 4 and len(probe) >= 20 and probe[9] == 1 else probe
    if len(probe) < 8:
        return None
    if recorded[0] >> 4 == 4:
        ihl = (recorded[0] & 15) * 4
        head = bytearray(recorded[:ihl])
        want = {8: 0, 13: 14, 17: 18}.get(probe[0])
        if want is None or recorded[ihl] != want:
            return None
        msg = bytearray(probe)
        msg[0] = want
        msg[2:4] = b"\0\0"
        msg[2:4] = struct.pack("!H", _csum(msg))
        head[16:20] = socket.inet_aton(local)
        struct.pack_into("!H", head, 2, ihl + len(msg))
        head[10:12] = b"\0\0"
        head[10:12] = struct.pack("!H", _csum(head))
        return bytes(head + msg)
    if probe[0] != 128:
        return None
    head6 = bytearray(recorded[:40])
    msg = bytearray(probe)
    msg[0] = 129
    msg[2:4] = b"\0\0"
    head6[24:40] = socket.inet_pton(socket.AF_INET6, local)
    struct.pack_into("!H", head6, 4, len(msg))
    msg[2:4] = struct.pack("!H", _icmp6_csum(bytes(head6[8:24]), bytes(head6[24:40]), msg))
    return bytes(head6 + msg)


def fit_error(recorded: bytes, probe: bytes, dst: str, local: str) -> bytes:
    """A recorded ICMP error rewritten to quote ``probe`` as the kernel sent it to ``dst``."""
    if recorded[0] >> 4 == 4:
        ihl = (recorded[0] & 15) * 4
        outer = bytearray(recorded[:ihl + 8])
        qhead = bytearray(recorded[ihl + 8:ihl + 8 + 20])
        body = probe[(probe[0] & 15) * 4:] if probe[0] >> 4 == 4 and len(probe) >= 20 else probe
        qhead[0] = 0x45
        struct.pack_into("!H", qhead, 2, 20 + len(body))
        qhead[12:16] = socket.inet_aton(local)
        qhead[16:20] = socket.inet_aton(dst)
        qhead[10:12] = b"\0\0"
        qhead[10:12] = struct.pack("!H", _csum(qhead))
        msg = outer[ihl:] + qhead + body[:8]
        msg[2:4] = b"\0\0"
        msg[2:4] = struct.pack("!H", _csum(msg))
        head = outer[:ihl]
        head[16:20] = socket.inet_aton(local)
        struct.pack_into("!H", head, 2, ihl + len(msg))
        head[10:12] = b"\0\0"
        head[10:12] = struct.pack("!H", _csum(head))
        return bytes(head + msg)
    head6 = bytearray(recorded[:40])
    outer6 = bytearray(recorded[40:48])
    qhead6 = bytearray(recorded[48:88])
    qhead6[8:24] = socket.inet_pton(socket.AF_INET6, local)
    qhead6[24:40] = socket.inet_pton(socket.AF_INET6, dst)
    struct.pack_into("!H", qhead6, 4, len(probe))
    msg6 = outer6 + qhead6 + probe[:1232 - 48]
    head6[24:40] = socket.inet_pton(socket.AF_INET6, local)
    struct.pack_into("!H", head6, 4, len(msg6))
    msg6[2:4] = b"\0\0"
    msg6[2:4] = struct.pack("!H", _icmp6_csum(bytes(head6[8:24]), bytes(head6[24:40]), msg6))
    return bytes(head6 + msg6)
