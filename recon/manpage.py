"""recon(1): a man page in roff (man macros) generated from the CLI's own commands, so it cannot drift from --help.

``recon --help-man`` prints it; ``recon --help-man > recon.1 && man -l recon.1`` reads it. Every subcommand (and
``lab``'s) gets a section with its usage, its help text and its options, as ``--help`` shows them.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from typing import Any

SEE_ALSO = ("nmap(1)", "fping(8)", "ping(8)", "tcpdump(8)", "hping3(8)", "pcap-filter(7)", "ip-netns(8)")
EXIT_STATUS = (("0", "something answered (or the command did what it was asked)"), ("1", "nothing answered"),
               ("2", "bad input: one line on stderr, no traceback unless --debug"),
               ("3", "privileges or environment (no CAP_NET_RAW, no such interface, a full disk)"),
               ("130", "interrupted (Ctrl-C)"))


def roff(text: str) -> str:
    """Plain text as roff: backslashes and hyphens escaped; a line starting with '.' or "'" is not a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line for line in text.splitlines())


def _paragraphs(help_text: str) -> Iterator[str]:
    """click help text as roff paragraphs; a paragraph click marks with \\b (no rewrap) stays as laid out."""
    for block in help_text.strip().split("\n\n"):
        lines = block.splitlines()
        if lines and lines[0].strip() == "\b":
            yield ".PP\n.nf\n" + roff("\n".join(lines[1:])) + "\n.fi"
        elif block.strip():
            yield ".PP\n" + roff(" ".join(line.strip() for line in lines))


def _walk(command: Any, ctx: Any, path: str) -> Iterator[tuple[str, Any, Any]]:
    """(command path, command, context) for every visible subcommand, depth first, in the order --help lists them."""
    for name in command.list_commands(ctx):
        sub = command.get_command(ctx, name)
        if sub is None or getattr(sub, "hidden", False):
            continue
        sub_ctx = sub.context_class(sub, info_name=name, parent=ctx)
        yield f"{path} {name}", sub, sub_ctx
        if hasattr(sub, "list_commands"):
            yield from _walk(sub, sub_ctx, f"{path} {name}")


def _options(command: Any, ctx: Any) -> list[str]:
    out = []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None:  # hidden, or an argument without help
            continue
        names, text = record
        out.append(f".TP\n.B {roff(names)}\n{roff(text) if text else ''}".rstrip())
    return out


def _section(path: str, command: Any, ctx: Any) -> list[str]:
    usage = " ".join(command.collect_usage_pieces(ctx))
    lines = [f'.SS "{roff(path)}"', f".B {roff(path)}", roff(usage)]
    lines += _paragraphs(command.help or command.short_help or "")
    options = _options(command, ctx)
    if options:
        lines += [".PP", "Options:", ".RS", *options, ".RE"]
    return lines


def manpage(root: Any, name: str, version: str) -> str:
    """The whole man page for the click command ``root`` (typer's group for the app)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")  # reproducible builds set it
    when = datetime.datetime.fromtimestamp(int(epoch), datetime.UTC) if epoch else datetime.datetime.now(datetime.UTC)
    ctx = root.context_class(root, info_name=name)
    summary = (root.help or "").strip().splitlines()[0]
    lines = [f'.TH {name.upper()} 1 "{when:%Y-%m-%d}" "{name} {version}" "User Commands"',
             ".SH NAME", f"{name} \\- {roff(summary)}",
             ".SH SYNOPSIS", f".B {name}", roff(" ".join(root.collect_usage_pieces(ctx))),
             ".SH DESCRIPTION", *_paragraphs(root.help or ""),
             ".SH OPTIONS", *_options(root, ctx),
             ".SH COMMANDS"]
    for path, command, sub_ctx in _walk(root, ctx, name):
        lines += _section(path, command, sub_ctx)
    lines += [".SH EXIT STATUS", *(f".TP\n.B {code}\n{roff(text)}" for code, text in EXIT_STATUS),
              ".SH ENVIRONMENT", ".TP", ".B NO_COLOR", roff("When set and not empty, no colour (https://no-color.org)."),
              ".SH SEE ALSO", ", ".join(f".BR {page.split('(')[0]} ({page.split('(')[1]}" for page in SEE_ALSO)]
    lines[-1] = lines[-1].replace(", .BR", ",\n.BR")
    return "\n".join(lines) + "\n"
