"""Deprecated alias module: the privilege checks live in recon.transport.

Kept only until engine, ping and craft open their sockets through a Transport;
then it goes (nothing else may import it).
"""

from __future__ import annotations

import socket

from recon.transport import _open, is_root, ping_group_allows, privilege_hint, require_raw

__all__ = ["is_root", "ping_group_allows", "raw_socket", "require_raw"]


def raw_socket(family: int, proto: int, what: str = "this command") -> socket.socket:
    """``socket(family, SOCK_RAW, proto)`` or a PrivilegeError that says what to do."""
    return _open(family, socket.SOCK_RAW, proto, what, privilege_hint(dgram_helps=True))
