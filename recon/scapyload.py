"""Scapy's IPv4 layers, imported as late and as cheaply as recon can (ARCHITECTURE.md).

Scapy reads the machine's IPv4 and IPv6 routing tables (over rtnetlink) when its route modules
load, a good part of a sweep's start-up (~0.05 s), and recon's probe templates never need them:
recon picks source addresses itself (``transport.route_source``). Nor do they need Scapy's IPv6
layers (~0.015 s more). The CLI owns its process and calls ``own_process()``; imports through
``inet()`` then leave both out, and the code that does use Scapy's routing (craft ``--via scapy``,
the Scapy reference engine: their send() and sr() pick the interface by it, and sr() matches
answers with the IPv6 layers loaded) calls ``route_tables()`` first. A library caller's process
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
    """``scapy.layers.inet`` (IP, ICMP, TCP, UDP); when the CLI owns the process, without the route tables or IPv6 layers."""
    if not _skip_routes or "scapy.layers.inet" in sys.modules:
        import scapy.layers.inet

        return scapy.layers.inet
    from scapy.config import conf

    if "scapy.route" not in sys.modules:
        conf.route_autoload = conf.route6_autoload = False
    ipv6, conf.ipv6_enabled = conf.ipv6_enabled, False  # inet.py then leaves out Scapy's IPv6 layers (~15 ms)
    try:
        import scapy.layers.inet
    finally:
        conf.ipv6_enabled = ipv6
    return scapy.layers.inet


def route_tables() -> None:
    """Scapy's IPv4 and IPv6 route tables and its default interface, read now if ``inet()`` skipped them."""
    inet()
    import scapy.layers.inet6  # noqa: F401  - inet() may have left it out; Scapy's answers() and checksums need it
    from scapy.config import conf

    if conf.route_autoload and conf.route6_autoload:
        return

    conf.route_autoload = conf.route6_autoload = True
    conf.route.resync()
    conf.route6.resync()
    conf.ifaces.load_confiface()
