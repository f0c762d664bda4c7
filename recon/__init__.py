"""recon: Scapy-based network reconnaissance.

The public API returns typed results (``recon.models``) and never prints.
Importing ``recon`` is cheap: Scapy is loaded only by the functions that need it.
"""

from __future__ import annotations

__version__ = "0.1.0"

from recon.errors import (
    CaptureError,
    ExitStatus,
    InputError,
    InvalidOption,
    InvalidTarget,
    LabError,
    PrivilegeError,
    ReconEnvironmentError,
    ReconError,
)
from recon.models import HostResult, LabInfo
from recon.targets import TargetSet, build_targets

__all__ = [
    "__version__",
    "build_targets",
    "TargetSet",
    "HostResult",
    "LabInfo",
    "ReconError",
    "InputError",
    "InvalidTarget",
    "InvalidOption",
    "CaptureError",
    "ReconEnvironmentError",
    "PrivilegeError",
    "LabError",
    "ExitStatus",
]
