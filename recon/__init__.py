"""recon: Scapy-based network reconnaissance.

The public API returns typed results (``recon.models``) and never prints:

    recon.sweep(targets, timeout=1.0, retries=1, ...) -> SweepResult   (recon.engine)
    recon.sweep_iter(targets, ...) -> SweepStream       HostResults as they are decided; .stats at the end
    recon.Prober(...)                                  keeps sockets open between sweeps
    recon.ping(host, count=..., ...) -> Pinger          iterate for PingReply/PingError(/PingPending/PingSent), then PingStats
    recon.sniff(read=... | iface=..., bpf=..., ...)     decoded packets (recon.capture)
    recon.craft(spec, ...) -> CraftResult               hand-built IPv4, shown and sent
    recon.watch(targets, period=..., ...) -> Watch      presence rounds and events
    recon.build_targets(specs, ...) -> TargetSet
    recon.Lab                                           the namespace lab

Importing ``recon`` is cheap: the names are loaded on first use, and Scapy only
by the functions that need it.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    # functions and classes
    "sweep": "recon.engine",
    "sweep_iter": "recon.engine",
    "SweepStream": "recon.engine",
    "Prober": "recon.engine",
    "ping": "recon.ping",
    "Pinger": "recon.ping",
    "sniff": "recon.capture",
    "read_frames": "recon.pcap",
    "PcapWriter": "recon.pcap",
    "decode": "recon.decode",
    "craft": "recon.craft",
    "Watch": "recon.watch",
    "Tracker": "recon.watch",
    "build_targets": "recon.targets",
    "TargetSet": "recon.targets",
    "Lab": "recon.lab",
    # models
    "HostResult": "recon.models",
    "SweepResult": "recon.models",
    "SweepStats": "recon.models",
    "PingReply": "recon.models",
    "PingError": "recon.models",
    "PingStats": "recon.models",
    "PingPending": "recon.models",
    "PingSent": "recon.models",
    "PingOptions": "recon.ping_options",
    "CraftSpec": "recon.models",
    "CraftResult": "recon.models",
    "DecodedPacket": "recon.models",
    "IPHeader": "recon.models",
    "IPv6Header": "recon.models",
    "Event": "recon.models",
    "DeviceState": "recon.models",
    "LabInfo": "recon.models",
    # errors
    "ExitStatus": "recon.errors",
    "ReconError": "recon.errors",
    "InputError": "recon.errors",
    "InvalidTarget": "recon.errors",
    "InvalidOption": "recon.errors",
    "CaptureError": "recon.errors",
    "ReconEnvironmentError": "recon.errors",
    "PrivilegeError": "recon.errors",
    "LabError": "recon.errors",
}

__all__ = ["__version__", "watch", *_LAZY]


def watch(targets: Any, **options: Any) -> Any:
    """``Watch(targets, **options)``: use as a context manager and iterate its rounds."""
    from recon.watch import Watch

    return Watch(targets, **options)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'recon' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
