"""IP protocol numbers and names in one place (ARCHITECTURE.md): the IANA keyword of each
number that decode and render print, the short lowercase names craft shows, and the names
``sniff --proto`` accepts. No imports: decode, packets and capture load it at start-up.
"""

from __future__ import annotations

__all__ = ["CRAFT_NAMES", "EXPERIMENTAL", "ICMP", "ICMPV6", "IP_PROTOCOLS", "NUMBERS", "TCP", "UDP", "proto_name"]

ICMP, TCP, UDP, ICMPV6 = 1, 6, 17, 58
EXPERIMENTAL = 253  # RFC 3692: for experimentation and testing

# IANA "Assigned Internet Protocol Numbers", keyword column (the subset a capture shows)
IP_PROTOCOLS = {0: "HOPOPT", 1: "ICMP", 2: "IGMP", 4: "IPIP", 6: "TCP", 17: "UDP", 41: "IPv6", 43: "IPv6-Route",
                44: "IPv6-Frag", 47: "GRE", 50: "ESP", 51: "AH", 58: "ICMPv6", 59: "IPv6-NoNxt", 60: "IPv6-Opts",
                89: "OSPF", 103: "PIM", 112: "VRRP", 132: "SCTP", 136: "UDPLite"}

# craft's protocol field: the protocols an IPv4 packet is commonly built with, lowercase, and the
# two reserved numbers (anything else prints as "other")
CRAFT_NAMES = {**{n: IP_PROTOCOLS[n].lower() for n in (1, 2, 6, 17, 41, 47, 50, 51)},
               EXPERIMENTAL: "experimental", 255: "reserved"}

# the names a user may give for a protocol (sniff --proto), as tcpdump spells them
NUMBERS = {"icmp": ICMP, "tcp": TCP, "udp": UDP, "icmp6": ICMPV6, "icmpv6": ICMPV6}


def proto_name(proto: int) -> str:
    """The IANA keyword of ``proto`` (``TCP``), or the number as text when it is not in the table."""
    return IP_PROTOCOLS.get(proto, str(proto))
