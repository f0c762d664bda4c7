"""A sweep the kernel cannot send (no route from the lab's scanner, which has no default route): the summary
counts the refused probes and the hint says why, instead of advising other ports or TCP probes
(issue 14 item 14: wrong advice). 240.0.0.0/4 is reserved: never a real host, and unrouted in the lab."""

from __future__ import annotations

import re

import pytest


@pytest.mark.parametrize("probe", [[], ["--probe", "echo"]], ids=["default-probes", "echo"])
def test_no_route_is_said_not_hidden_behind_advice(lab, probe: list[str]) -> None:
    res = lab.recon("sweep", "240.0.0.1-3", *probe)
    assert res.returncode == 1 and res.stdout == "", res.stderr
    summary, hint = res.stderr.splitlines()
    refused = re.search(r"\((\d+) probes the kernel refused to send\)$", summary)
    assert summary.startswith("0 hosts up of 3 ") and refused and int(refused.group(1)) >= 3, summary
    assert hint.startswith("hint: the kernel refused to send every probe") and "ip route get" in hint, hint


def test_a_partly_routed_sweep_counts_what_could_not_go(lab) -> None:
    """One routed target answers; the unrouted one's probes are counted, and no hint is given (a host is up)."""
    res = lab.recon("sweep", "240.0.0.1", "198.18.2.200", "--probe", "echo")
    assert res.returncode == 0 and "198.18.2.200" in res.stdout, res.stderr
    assert res.stderr.strip().endswith("probes the kernel refused to send)") and "hint" not in res.stderr, res.stderr
