"""Raw-socket access: open sockets or explain, in one line, how to get the right."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from recon.errors import PrivilegeError

__all__ = ["raw_socket", "ping_group_allows", "is_root", "require_raw"]


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


def raw_socket(family: int, proto: int, what: str = "this command") -> socket.socket:
    """``socket(family, SOCK_RAW, proto)`` or a PrivilegeError that says what to do."""
    try:
        return socket.socket(family, socket.SOCK_RAW, proto)
    except PermissionError:
        hint = PrivilegeError.ADVICE
        if ping_group_allows():
            hint += " (unprivileged ICMP datagram sockets are allowed here)"
        else:
            hint += ", or allow ICMP datagram sockets with 'sudo sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"'"
        raise PrivilegeError(what, hint=hint) from None


def require_raw(what: str) -> None:
    """Fail early (before sending anything) when raw sockets are not allowed."""
    raw_socket(socket.AF_INET, socket.IPPROTO_ICMP, what).close()
