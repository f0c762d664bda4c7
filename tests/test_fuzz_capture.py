"""Fuzz the pcap/pcapng reader: whatever the bytes, frames and at most one CaptureError, in bounded memory.

Seeds are the captures in captures/ (pcap in both resolutions and byte orders, pcapng,
several link types); Hypothesis mutates them: bytes flipped, overwritten, inserted or
removed, length and timestamp fields set to extremes, files cut or glued. Every frame is
also decoded and rendered in each output mode, so no struct.error, OverflowError or
other exception can hide behind the reader.

CI runs a brief, derandomized pass. A longer, random run by hand:

    RECON_FUZZ_EXAMPLES=20000 python -m pytest tests/test_fuzz_capture.py -q
"""

from __future__ import annotations

import io
import struct
import tracemalloc

from hypothesis import given
from hypothesis import strategies as st

from recon import render
from recon.decode import decode
from recon.errors import CaptureError
from recon.pcap import read_frames
from tests.conftest import CAPTURES, fuzz_settings

FUZZ = fuzz_settings(200)
MAX_RECORD = 262_144  # the reader's cap on one frame (tshark's)
PEAK_BYTES = 48 << 20  # a 16 MiB pcapng block is the largest thing the reader holds; the seeds are tiny

SEEDS = {p.name: p.read_bytes() for p in sorted(CAPTURES.iterdir()) if p.suffix in (".pcap", ".pcapng")}


def _swapped(pcap: bytes) -> bytes:
    """A little-endian nanosecond pcap rewritten big-endian (a byte order no file in captures/ has)."""
    out = bytearray(bytes.fromhex("a1b23c4d") + struct.pack(">HHiIII", *struct.unpack_from("<HHiIII", pcap, 4)))
    off = 24
    while off + 16 <= len(pcap):
        sec, frac, incl, orig = struct.unpack_from("<IIII", pcap, off)
        out += struct.pack(">IIII", sec, frac, incl, orig) + pcap[off + 16:off + 16 + incl]
        off += 16 + incl
    return bytes(out)


SEEDS["swapped.pcap"] = _swapped(SEEDS["sweep.pcap"])
EXTREMES = [0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x10000, MAX_RECORD, MAX_RECORD + 1, 0x7FFFFFFF, 0xFFFFFFFF]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed capture with a few mutations: bytes flipped or replaced, a 32-bit field set to an extreme,
    bytes inserted or deleted, the file cut short or glued to another."""
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "bytes", "field", "insert", "delete", "cut", "glue"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "bytes":
            chunk = draw(st.binary(min_size=1, max_size=16))
            data[at:at + len(chunk)] = chunk
        elif op == "field":
            at -= at % 4  # record and block fields are 32-bit aligned
            order = draw(st.sampled_from("<>"))
            data[at:at + 4] = struct.pack(order + "I", draw(st.sampled_from(EXTREMES)))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 64))]
        elif op == "cut":
            del data[at:]
        else:
            data += SEEDS[draw(st.sampled_from(sorted(SEEDS)))][draw(st.integers(0, 64)):]
    return bytes(data)


def _read_and_render(blob: bytes) -> int:
    """Read every frame of ``blob``, decode and render it in every mode; the number of frames read."""
    frames = 0
    try:
        for frame in read_frames("fuzz.pcap", io.BytesIO(blob)):
            frames += 1
            assert type(frame.time_ns) is int and 0 <= frame.time_ns <= 0xFFFF_FFFF * 10**9 + 999_999_999
            assert len(frame.data) <= MAX_RECORD
            pkt = decode(frame.data, frame.linktype, frames, frame.time_ns, frame.wirelen, frame.interface)
            render.sniff_line(pkt)
            render.sniff_verbose(pkt)
            render.sniff_json(pkt, True)
            render.sniff_hex(pkt)
    except CaptureError as exc:
        assert str(exc) and "\n" not in str(exc)
    return frames


@FUZZ
@given(blob=mutated())
def test_mutated_captures_yield_frames_or_one_capture_error(blob: bytes) -> None:
    """Any mutation of a real capture: frames (each at most 256 KiB, no more than the bytes can hold) and at most one
    CaptureError; nothing else is ever raised, and memory stays bounded."""
    tracemalloc.start()
    try:
        frames = _read_and_render(blob)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert frames <= len(blob) // 12  # every record or block takes at least 12 bytes
    assert peak < PEAK_BYTES, peak


@FUZZ
@given(head=st.sampled_from([b"", bytes.fromhex("d4c3b2a1"), bytes.fromhex("a1b2c3d4"), bytes.fromhex("4d3cb2a1"),
                             bytes.fromhex("34cdb2a1"), bytes.fromhex("0a0d0d0a")]), tail=st.binary(max_size=512))
def test_random_bytes_behind_a_magic_yield_frames_or_one_capture_error(head: bytes, tail: bytes) -> None:
    """Random bytes behind each magic the reader knows: the same promise, from scratch rather than from a seed."""
    _read_and_render(head + tail)
