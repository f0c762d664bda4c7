"""The public API (as httpx tests its exports): every name in recon.__all__ exists, cheaply."""

from __future__ import annotations

import subprocess
import sys

import recon
from tests.conftest import ROOT


def test_all_exports_resolve() -> None:
    """Every name in __all__ is importable from recon."""
    for name in recon.__all__:
        assert getattr(recon, name) is not None, name


def test_import_recon_does_not_import_scapy() -> None:
    """`import recon` and resolving its API leave Scapy unloaded (it is loaded by the calls that need it)."""
    code = ("import sys, recon\n[getattr(recon, n) for n in recon.__all__]\n"
            "print(sorted(m for m in sys.modules if m.startswith('scapy'))[:3])")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0 and res.stdout.strip() == "[]", res.stdout + res.stderr
