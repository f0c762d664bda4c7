"""Classic BPF (ARCHITECTURE.md): compile tcpdump filter expressions, run them over frames, attach them to sockets.

``compile_bpf`` asks ``tcpdump -ddd`` (or libpcap through Scapy) for the program;
``bpf_match`` interprets it over one frame exactly as the kernel would, so
``recon sniff --read F -f EXPR`` keeps what ``tcpdump -r F EXPR`` keeps;
``attach_filter`` installs it in the kernel (``SO_ATTACH_FILTER``) for live capture.
"""

from __future__ import annotations

import ctypes
import shutil
import socket
import struct
import subprocess
import tempfile

from recon.errors import InvalidOption
from recon.pcap import pcap_header
from recon.transport import PacketSocket

__all__ = ["Program", "attach_filter", "bpf_match", "compile_bpf"]

Program = list[tuple[int, int, int, int]]  # (code, jt, jf, k) per instruction
_MAGIC_US = 0xA1B2C3D4  # microsecond pcap: what tcpdump -r reads everywhere
_SO_ATTACH_FILTER = 26


def compile_bpf(expr: str, linktype: int) -> Program:
    """Compile a tcpdump filter expression to classic BPF for ``linktype`` (``tcpdump -ddd``).

    tcpdump compiles against a header-only capture file of that link type, so no interface (and no
    privilege) is needed. Without tcpdump, Scapy's ``compile_filter`` (libpcap through ctypes) is tried.
    """
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        try:
            from scapy.arch.common import compile_filter

            prog = compile_filter(expr, linktype=linktype)
            insns = ctypes.cast(prog.bf_insns, ctypes.POINTER(ctypes.c_ubyte * (8 * prog.bf_len))).contents
            raw = bytes(insns)
            return [_insn(*struct.unpack_from("HBBI", raw, 8 * i)) for i in range(prog.bf_len)]
        except Exception as exc:  # Scapy raises Scapy_Exception for both a bad filter and a missing libpcap
            raise InvalidOption("-f", expr, f"cannot compile the BPF filter (install tcpdump): {exc}") from None
    with tempfile.NamedTemporaryFile(suffix=".pcap") as tmp:
        tmp.write(pcap_header(linktype, _MAGIC_US))
        tmp.flush()
        # after "--", an expression that starts with "-" is an expression, never tcpdump's options
        proc = subprocess.run([tcpdump, "-ddd", "-r", tmp.name, "--", expr], capture_output=True, text=True)
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["syntax error"])[-1].removeprefix("tcpdump: ")
        raise InvalidOption("-f", expr, f"not a valid BPF filter expression ({reason})")
    try:
        lines = proc.stdout.split("\n")
        return [_insn(*(int(x) for x in line.split())) for line in lines[1:int(lines[0]) + 1]]
    except (ValueError, TypeError):
        raise InvalidOption("-f", expr, "tcpdump gave no BPF program for it") from None


def _insn(code: int, jt: int, jf: int, k: int) -> tuple[int, int, int, int]:
    return code, jt, jf, k


def bpf_match(program: Program, data: bytes, wirelen: int | None = None) -> bool:
    """Run a classic BPF program over one frame, as the kernel does (``tcpdump -r FILE EXPR`` semantics):
    True when it returns a non-zero length. A load beyond the captured bytes rejects the frame."""
    a = x = 0
    mem = [0] * 16
    n = len(data)
    pc = 0
    count = len(program)
    while pc < count:
        code, jt, jf, k = program[pc]
        pc += 1
        cls = code & 0x07
        if cls in (0x00, 0x01):  # LD, LDX
            mode, size = code & 0xE0, code & 0x18
            if mode == 0x00:  # IMM
                val = k
            elif mode == 0x80:  # LEN (LD and LDX)
                val = n if wirelen is None else wirelen
            elif mode == 0x60:  # MEM
                val = mem[k & 15]
            elif mode == 0xA0 and cls == 0x01:  # LDX MSH: 4 * (P[k] & 0xf)
                if k >= n:
                    return False
                val = (data[k] & 0x0F) << 2
            else:  # ABS (0x20) or IND (0x40)
                off = k + (x if mode == 0x40 else 0)
                width = 4 if size == 0x00 else 2 if size == 0x08 else 1
                if off < 0 or off + width > n:
                    return False
                val = int.from_bytes(data[off:off + width], "big")
            if cls == 0x00:
                a = val
            else:
                x = val
        elif cls == 0x02:  # ST
            mem[k & 15] = a
        elif cls == 0x03:  # STX
            mem[k & 15] = x
        elif cls == 0x04:  # ALU (rare in tcpdump's programs: a call here costs little)
            result = _alu(code & 0xF0, a, x if code & 0x08 else k)
            if result is None:
                return False
            a = result
        elif cls == 0x05:  # JMP
            op = code & 0xF0
            src = x if code & 0x08 else k
            if op == 0x00:
                pc += k
                continue
            if op == 0x10:
                taken = a == src
            elif op == 0x20:
                taken = a > src
            elif op == 0x30:
                taken = a >= src
            else:  # 0x40 JSET
                taken = bool(a & src)
            pc += jt if taken else jf
        elif cls == 0x06:  # RET
            return bool(a if code & 0x18 == 0x10 else k)
        else:  # MISC: TAX / TXA
            if code & 0xF8 == 0x00:
                x = a
            else:
                a = x
    return False


def _alu(op: int, a: int, src: int) -> int | None:
    """One BPF ALU operation on the accumulator; None for a division by zero (the kernel rejects the frame)."""
    if op == 0x00:
        return (a + src) & 0xFFFFFFFF
    if op == 0x10:
        return (a - src) & 0xFFFFFFFF
    if op == 0x20:
        return (a * src) & 0xFFFFFFFF
    if op == 0x30:
        if src == 0:
            return None
        return a // src
    if op == 0x40:
        return a | src
    if op == 0x50:
        return a & src
    if op == 0x60:
        return (a << src) & 0xFFFFFFFF if src < 32 else 0
    if op == 0x70:
        return a >> src if src < 32 else 0
    if op == 0x80:
        return (-a) & 0xFFFFFFFF
    if op == 0x90:
        if src == 0:
            return None
        return a % src
    if op == 0xA0:
        return a ^ src
    return a  # an unknown operation leaves the accumulator as it was


def attach_filter(sock: PacketSocket, program: Program) -> None:
    raw = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *insn) for insn in program))
    fprog = struct.pack("HL", len(program), ctypes.addressof(raw))
    sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)
