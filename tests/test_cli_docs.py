"""The CLI documents itself (issue 13, item 5): recon(1) from --help-man for every subcommand, shell completion
through Typer, and colour only on a terminal, honouring NO_COLOR. Nothing here sends a packet."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli

VENV_BIN = str(Path(sys.executable).parent)


def _subcommands() -> list[str]:
    """Every visible command path of the real app, from click's tree (so a new subcommand is covered by itself)."""
    import typer

    from recon.cli import app

    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="recon")
    paths = []
    for name in root.list_commands(ctx):
        sub = root.get_command(ctx, name)
        paths.append(name)
        if hasattr(sub, "list_commands"):
            sub_ctx = sub.context_class(sub, info_name=name, parent=ctx)
            paths += [f"{name} {child}" for child in sub.list_commands(sub_ctx)]
    return paths


def test_help_man_is_roff_that_renders_every_subcommand_and_its_options(tmp_path: Path) -> None:
    res = run_cli("--help-man")
    assert res.code == 0 and res.stderr == ""
    page = res.stdout
    assert page.startswith('.TH RECON 1 "') and "\n.SH NAME\nrecon \\- " in page
    paths = _subcommands()
    assert {"sweep", "ping", "sniff", "craft", "watch", "demo", "lab up", "lab down"} <= set(paths)
    for path in paths:
        assert f'.SS "recon {path}"' in page, path
    groff = shutil.which("groff")
    if groff is None:
        pytest.skip("groff is not installed (apt-get install groff-base)")
    source = tmp_path / "recon.1"
    source.write_text(page)
    rendered = subprocess.run([groff, "-man", "-Tutf8", "-ww", str(source)], capture_output=True, text=True,
                              env={**os.environ, "GROFF_NO_SGR": "1"}, timeout=60)
    assert rendered.returncode == 0 and rendered.stderr == "", rendered.stderr  # -ww: no roff warning at all
    text = "".join(ch for i, ch in enumerate(rendered.stdout) if ch != "\b" and rendered.stdout[i + 1:i + 2] != "\b")
    for path in paths:
        assert f"recon {path}" in text, path
    # each subcommand's options as --help shows them, hyphens intact (escaped as \- in the source)
    for flag in ("-W, --timeout", "-I, --interface", "--grep", "-a, --alive", "--deadline", "-X, --hex", "--dry-run",
                 "--help-man", "--install-completion"):
        assert flag in text, flag
    assert "EXIT STATUS" in text and "NO_COLOR" in text and "tcpdump(8)" in text


def test_roff_escapes_what_would_be_a_request() -> None:
    from recon.manpage import roff

    assert roff(".TH evil\n'x\nback\\slash -n") == "\\&.TH evil\n\\&'x\nback\\eslash \\-n"


def test_completion_script_installs_and_completes_subcommands_and_options(tmp_path: Path) -> None:
    """--install-completion bash writes the script under $HOME; sourced in bash, it completes through recon itself."""
    # Typer finds the shell from the parent processes (shellingham), which a CI job started without a shell
    # above it lacks ("Shell None is not supported"); this variable makes it take the shell named on the line.
    env = {**os.environ, "HOME": str(tmp_path), "SHELL": "/bin/bash", "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
           "PYTHONPATH": str(ROOT), "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    installed = subprocess.run([sys.executable, "-m", "recon", "--install-completion", "bash"], capture_output=True,
                               text=True, env=env, cwd=tmp_path, timeout=60)
    assert installed.returncode == 0, installed.stderr
    scripts = list(tmp_path.rglob("recon.sh")) + list(tmp_path.rglob("*recon*"))
    script = next(p for p in scripts if p.is_file() and "_RECON_COMPLETE" in p.read_text())
    shown = subprocess.run([sys.executable, "-m", "recon", "--show-completion", "bash"], capture_output=True, text=True,
                           env=env, timeout=60)
    assert shown.returncode == 0 and "complete -o default -F _recon_completion recon" in shown.stdout

    def complete(*words: str) -> list[str]:
        line = " ".join(words)
        cmd = (f"source {script}; COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; "
               '_recon_completion recon; printf "%s\\n" "${COMPREPLY[@]}"')
        res = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, env=env, timeout=60)
        return res.stdout.split()

    assert "sweep" in complete("recon", "sw")
    assert "--grep" in complete("recon", "sweep", "--gr")
    assert {"up", "down", "status", "exec"} <= set(complete("recon", "lab", "''"))


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("no_color", "tty", "coloured"), [(None, True, True), ("1", True, False), ("", True, True),
                                                           (None, False, False)])
def test_errors_are_coloured_only_on_a_tty_without_no_color(monkeypatch: pytest.MonkeyPatch, no_color: str | None,
                                                             tty: bool, coloured: bool) -> None:
    """no-color.org: NO_COLOR set to a non-empty value turns colour off; an empty one does not. Off a TTY, never."""
    from recon.cli import run

    monkeypatch.delenv("TERM", raising=False)
    if no_color is None:
        monkeypatch.delenv("NO_COLOR", raising=False)
    else:
        monkeypatch.setenv("NO_COLOR", no_color)
    out, err = io.StringIO(), (_Tty() if tty else io.StringIO())
    code = run(["sweep", "--json", "--csv", "198.18.0.1"], stdout=out, stderr=err)
    assert code == 2
    line = err.getvalue()
    assert ("\033[1;31mrecon: error:\033[0m " in line) is coloured, repr(line)
    assert ("\033" in line) is coloured and line.endswith("pick one output format\n")


@pytest.mark.parametrize(("args", "listed"), [([], "sweep"), (["lab"], "down")])
def test_no_subcommand_shows_the_help_as_laid_out(args: list[str], listed: str) -> None:
    """`recon` (or `recon lab`) alone prints its help on stderr as --help lays it out, exit 2 as click does; it was
    squeezed into one 'recon: error: Usage: ...' line."""
    res = run_cli(*args)
    lines = res.stderr.splitlines()
    assert res.code == 2 and res.stdout == ""
    assert lines[0].startswith(f"Usage: recon {' '.join(args)}".rstrip() + " [OPTIONS] COMMAND")
    assert "Commands:" in [line.strip() for line in lines] and any(line.split()[:1] == [listed] for line in lines)
    assert "recon: error:" not in res.stderr
