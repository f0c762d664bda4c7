"""Scapy's IPv4 layers, imported as late and as cheaply as recon can (ARCHITECTURE.md).

Scapy reads the machine's IPv4 and IPv6 routing tables (over rtnetlink) when its route modules
load, a good part of a sweep's start-up (~0.05 s), and recon's probe templates never need them:
recon picks source addresses itself (``transport.route_source``). The CLI owns its process and
calls ``own_process()``; imports through ``inet()`` then leave the tables unread, and the code
that does use Scapy's routing (craft ``--via scapy``, the Scapy reference engine: their send()
and sr() pick the interface by it) calls ``route_tables()`` first. A library caller's process
keeps Scapy's defaults, since its own Scapy code may route.
"""

from __future__ import annotations

import sys
from types import ModuleType

__all__ = ["inet", "own_process", "route_tables"]

_skip_routes = False


def own_process() -> None:
    """recon is the whole process (the CLI): Scapy's route tables are read only when something routes by them."""
    global _skip_routes
    _skip_routes = True


def inet() -> ModuleType:
    """``scapy.layers.inet`` (IP, ICMP, TCP, UDP), imported without reading the route tables when they may be skipped."""
    if _skip_routes and "scapy.route" not in sys.modules:
        from scapy.config import conf

        conf.route_autoload = conf.route6_autoload = False
    import scapy.layers.inet

    return scapy.layers.inet


def route_tables() -> None:
    """Scapy's IPv4 and IPv6 route tables and its default interface, read now if ``inet()`` skipped them."""
    inet()
    from scapy.config import conf

    if conf.route_autoload and conf.route6_autoload:
        return
    import scapy.route6  # noqa: F401  - sets conf.route6

    conf.route_autoload = conf.route6_autoload = True
    conf.route.resync()
    conf.route6.resync()
    conf.ifaces.load_confiface()
