"""Byte-level helpers agree with Scapy."""

from hypothesis import given
from hypothesis import strategies as st

from recon.packets import inet_checksum


@given(st.binary(min_size=0, max_size=200))
def test_checksum_matches_scapy(data: bytes) -> None:
    """inet_checksum equals Scapy's checksum for any bytes, odd lengths included."""
    from scapy.utils import checksum

    assert inet_checksum(data) == checksum(data)


def test_checksum_verifies_to_zero() -> None:
    """A header with its checksum filled in sums to zero (how receivers verify)."""
    hdr = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")
    c = inet_checksum(hdr)
    assert inet_checksum(hdr[:10] + c.to_bytes(2, "big") + hdr[12:]) == 0
