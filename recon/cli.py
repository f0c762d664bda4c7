"""recon's command line: parse options → call one library function → render → exit code.

Scapy is imported only inside the commands that need it, so ``recon --help``
stays fast. Errors become one line on stderr and an exit code (``ExitStatus``);
``--debug`` shows the traceback too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from typing import Annotated, Optional

import typer

from recon import __version__
from recon import render
from recon.errors import ExitStatus, InputError, ReconError

app = typer.Typer(
    name="recon",
    help="Network reconnaissance: find hosts, ping, sniff and craft packets, watch a LAN.\n\n"
    "Try it safely: 'sudo recon demo' builds a virtual lab, probes it and tears it down.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
lab_app = typer.Typer(
    help="The safe virtual LAN (network namespaces in 198.18.0.0/15). Example: sudo recon lab up",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(lab_app, name="lab", short_help="The safe virtual LAN for trying recon, as in: sudo recon lab up")

_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        render.out(f"recon {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    _state["debug"] = debug


def _not_built(command: str) -> int:
    raise InputError(f"'recon {command}' is not built yet", hint="see 'recon --help' for what works today")


# --- sweep ------------------------------------------------------------------------------


TargetsArg = Annotated[Optional[list[str]], typer.Argument(help="Addresses, ranges (198.18.0.1-120), CIDRs, octet ranges, hostnames.", show_default=False)]
InputFileOpt = Annotated[Optional[str], typer.Option("--input-file", "-iL", help="Read targets from FILE, one per line ('-' for stdin, '#' comments).")]
ExcludeOpt = Annotated[Optional[list[str]], typer.Option("--exclude", help="Leave out these targets (repeatable).")]
ExcludeFileOpt = Annotated[Optional[str], typer.Option("--exclude-file", help="Leave out the targets listed in FILE.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Allow more than 65,536 addresses.")]


@app.command(short_help="Find live hosts (ICMP/ARP), as in: recon sweep 192.168.1.1-120")
def sweep(
    targets: TargetsArg = None,
    input_file: InputFileOpt = None,
    exclude: ExcludeOpt = None,
    exclude_file: ExcludeFileOpt = None,
    yes: YesOpt = False,
    timeout: Annotated[float, typer.Option("--timeout", "-t", help="Seconds to wait for replies after the last probe.")] = 1.0,
    retries: Annotated[int, typer.Option("--retries", "-r", help="Re-probe the silent targets this many times.")] = 1,
    rate: Annotated[Optional[float], typer.Option("--rate", help="Probes per second (token bucket); default: as fast as the socket takes.")] = None,
    probe: Annotated[str, typer.Option("--probe", help="ICMP probe: echo (type 8), timestamp (13) or mask (17).")] = "echo",
    method: Annotated[str, typer.Option("--method", help="auto: ARP on-link, ICMP routed (as nmap); or icmp, arp.")] = "auto",
    engine: Annotated[str, typer.Option("--engine", help="raw: batched raw sockets; scapy: Scapy sr() (slow reference).")] = "raw",
    source: Annotated[Optional[str], typer.Option("--source", help="Send from this local IPv4 address.")] = None,
    interface: Annotated[Optional[str], typer.Option("--interface", "-i", help="Send on this interface.")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Probe in this seeded pseudo-random order (default: address order).")] = None,
    shard: Annotated[Optional[str], typer.Option("--shard", help="Probe only shard I of N (I/N), zmap-style; shards are disjoint and complete.")] = None,
    resolve: Annotated[bool, typer.Option("--resolve", "-R", help="Reverse-resolve the hosts that are up (bounded in time).")] = False,
    show_all: Annotated[bool, typer.Option("--all", "-a", help="List down and unreachable targets too.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="JSON lines, one object per host.")] = False,
    csv_out: Annotated[bool, typer.Option("--csv", help="CSV with a header row.")] = False,
    pcap: Annotated[Optional[str], typer.Option("--pcap", help="Write every probe and reply to this pcap file.")] = None,
) -> int:
    """Find live hosts (ICMP/ARP). Example: recon sweep 192.168.1.1-120"""
    from recon.engine import Prober, parse_shard
    from recon.targets import build_targets

    if json_out and csv_out:
        raise InputError("--json and --csv cannot be combined", hint="pick one output format")
    shard_t = parse_shard(shard) if shard is not None else (1, 1)
    if seed is None and shard_t[1] > 1:
        seed = 0  # shards interleave over the same permutation; any fixed seed keeps them disjoint
    target_set = build_targets(targets or [], input_file=input_file, exclude=exclude or [], exclude_file=exclude_file, yes=yes)
    progress = render.SweepProgress()
    with Prober(method=method, probe=probe, engine=engine, interface=interface, source=source, rate=rate) as prober:
        result = prober.sweep(target_set, timeout=timeout, retries=retries, seed=seed, shard=shard_t, pcap=pcap,
                              resolve=resolve, progress=progress)
    progress.finish()
    if json_out:
        render.out_lines(render.sweep_json_lines(result, show_all))
    elif csv_out:
        render.sweep_csv(result, show_all)
    else:
        text = render.sweep_table(result, show_all)
        if text:
            render.out(text)
    render.err(render.sweep_summary(result))
    return ExitStatus.OK if result.up else ExitStatus.NONE


# --- ping -------------------------------------------------------------------------------


@app.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True}, short_help="Ping one host like ping(8), as in: recon ping -c 4 192.168.1.1")
def ping() -> int:
    """Ping one host like ping(8). Example: recon ping -c 4 192.168.1.1"""
    return _not_built("ping")


# --- sniff ------------------------------------------------------------------------------


@app.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True}, short_help="Decode IP headers live or from pcap, as in: recon sniff --proto icmp")
def sniff() -> int:
    """Decode IP headers live or from a pcap. Example: recon sniff --proto icmp -c 10"""
    return _not_built("sniff")


# --- craft ------------------------------------------------------------------------------


@app.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True}, short_help="Hand-build and send an IP packet, as in: recon craft --src 172.16.12.1 --dst 172.31.0.1")
def craft() -> int:
    """Build, show and send a hand-made IP packet. Example: recon craft --src 172.16.12.1 --dst 172.31.0.1 --dry-run"""
    return _not_built("craft")


# --- watch ------------------------------------------------------------------------------

import contextlib  # noqa: E402 - section-local imports keep parallel edits apart
import signal  # noqa: E402
from collections.abc import Iterator  # noqa: E402


@app.command(short_help="Report devices joining/leaving, as in: recon watch 192.168.1.0/24")
def watch(
    targets: TargetsArg = None,
    period: Annotated[float, typer.Option("--period", help="Seconds between rounds (0: back to back).")] = 1.0,
    misses: Annotated[int, typer.Option("--misses", help="A device is DOWN after this many silent rounds.")] = 3,
    mac: Annotated[Optional[list[str]], typer.Option("--mac", help="Watch list: alert only on this MAC (repeatable).")] = None,
    host: Annotated[Optional[list[str]], typer.Option("--host", help="Watch list: alert only on this address (repeatable).")] = None,
    exec_: Annotated[Optional[str], typer.Option("--exec", help="Run CMD once per event, no shell; details in RECON_EVENT, RECON_ADDRESS, RECON_MAC, RECON_VENDOR, RECON_HOSTNAME.")] = None,
    notify: Annotated[bool, typer.Option("--notify", help="Desktop notification per event (notify-send).")] = False,
    json_: Annotated[bool, typer.Option("--json", help="One JSON line per event (the first round: INVENTORY lines).")] = False,
    state: Annotated[Optional[str], typer.Option("--state", help="JSON file of known devices, kept across runs.")] = None,
    once: Annotated[bool, typer.Option("--once", help="One round: print the inventory, exit 0 if any device is up, else 1.")] = False,
    timeout: Annotated[Optional[float], typer.Option("--timeout", help="Seconds to wait for replies in a round (default: 0.6 x period, 0.2 to 1).")] = None,
    input_file: InputFileOpt = None,
    exclude: ExcludeOpt = None,
) -> int:
    """Report devices joining or leaving. Example: recon watch 192.168.1.0/24 --mac aa:bb:cc:dd:ee:ff"""
    from recon.errors import InvalidOption
    from recon.privileges import require_raw
    from recon.targets import build_targets
    from recon.watch import HookRunner, Watch, normalize_mac, parse_exec

    tset = build_targets(targets or host or [], input_file=input_file, exclude=exclude or [])
    if period < 0:
        raise InvalidOption("--period", period, "seconds between rounds, 0 or more")
    if misses < 1:
        raise InvalidOption("--misses", misses, "a whole number of rounds, at least 1")
    macs = [normalize_mac(x) for m in mac or [] for x in m.split(",") if x.strip()]
    hosts = build_targets(host) if host else None
    argv = parse_exec(exec_) if exec_ else None
    require_raw("recon watch")
    with _sigterm_as_exit(), Watch(tset, period=period, misses=misses, macs=macs, hosts=hosts, state=state,
                                   hooks=HookRunner(argv, notify=notify), timeout=timeout) as w:
        for rnd in w.rounds(once=once):
            for note in rnd.notes:
                render.err(note)
            for line in render.watch_round(rnd, as_json=json_):
                render.out(line)
            if once:
                return ExitStatus.OK if rnd.up else ExitStatus.NONE
            if rnd.number == 1:
                render.err(render.watch_summary(len(tset), rnd.up, period, misses))
    return ExitStatus.OK


@contextlib.contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """SIGTERM (systemd, kill) leaves like Ctrl-C does, through the finally blocks (state saved), exit 143."""
    def _leave(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, _leave)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- lab --------------------------------------------------------------------------------


@lab_app.command("up")
def lab_up(
    loss: Annotated[float, typer.Option(help="Drop this % of frames delivered to the scanner (nftables).")] = 0.0,
    delay: Annotated[float, typer.Option(help="Delay in ms on the wan link (198.18.5.0/24).")] = 0.0,
    jitter: Annotated[float, typer.Option(help="Jitter in ms (uniform ±) on the wan link.")] = 0.0,
    name: Annotated[Optional[str], typer.Option(help="Lab name (default: the current lab, or a new unique one).")] = None,
) -> int:
    """Build the lab (idempotent). Example: sudo recon lab up --loss 5"""
    from recon.lab import Lab, current_lab, set_current

    lab = Lab(name) if name else current_lab()
    was_up = lab.is_up()
    info = lab.up(loss=loss, delay_ms=delay, jitter_ms=jitter)
    set_current(lab)
    if was_up:
        render.err(f"lab {lab.name} was already up; impairments updated")
    render.out(render.lab_status(info))
    return ExitStatus.OK


@lab_app.command("status")
def lab_status() -> int:
    """Show the lab's namespaces, addresses and live ranges. Example: recon lab status"""
    from recon.lab import current_lab

    render.out(render.lab_status(current_lab().info()))
    return ExitStatus.OK


@lab_app.command("exec", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def lab_exec(
    command: Annotated[list[str], typer.Argument(help="The command to run in the scanner namespace.")],
) -> int:
    """Run a command inside the scanner namespace. Example: recon lab exec -- ping -c1 198.18.0.10"""
    from recon.lab import current_lab

    argv = current_lab().exec_argv(command)
    return subprocess.run(argv).returncode


@lab_app.command("down")
def lab_down(
    name: Annotated[Optional[str], typer.Option(help="Lab name (default: the current lab).")] = None,
) -> int:
    """Tear the lab down: every namespace, process and file. Example: sudo recon lab down"""
    from recon.lab import Lab, current_lab

    lab = Lab(name) if name else current_lab()
    removed = lab.down()
    render.err(f"lab {lab.name}: removed {len(removed)} namespaces" if removed else f"lab {lab.name} was not up")
    return ExitStatus.OK


# --- demo -------------------------------------------------------------------------------


@app.command(short_help="Build the lab, run recon on it, tear it down, as in: sudo recon demo")
def demo() -> int:
    """Build the lab, run recon against it, show the results, tear it down. Example: sudo recon demo"""
    from recon.lab import Lab

    lab = Lab()
    try:
        info = lab.up()
        render.out(render.lab_status(info))
        return ExitStatus.OK
    finally:
        lab.down()
        render.err(f"lab {lab.name} torn down")


# --- entry point --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    sys.exit(run(argv))


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return the exit status (``program(args) -> ExitStatus``, as httpie does)."""
    args = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in args
    try:
        result = app(args=args, prog_name="recon", standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        return ExitStatus.INTERRUPTED
    except KeyboardInterrupt:
        render.err("recon: interrupted")
        return ExitStatus.INTERRUPTED
    except ReconError as exc:
        if debug:
            traceback.print_exc()
        render.err(render.error_line(exc))
        return int(exc.exit_status)
    except typer.TyperException as exc:  # click usage errors: one line, exit 2
        if debug:
            traceback.print_exc()
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)  # type: ignore[attr-defined]
        command = getattr(getattr(exc, "ctx", None), "command_path", "recon")
        render.err(f"recon: error: {' '.join(message.split())} (see '{command} --help')")
        return int(getattr(exc, "exit_code", ExitStatus.USAGE))
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitStatus.OK
    if isinstance(result, int):
        return result
    return ExitStatus.OK
