"""The one exception tree of recon.

Every message says what to do next. The CLI maps each class to an exit code
(see ``ExitStatus``); nothing below the CLI calls ``sys.exit``.

    ReconError                      exit 2 unless a subclass says otherwise
    ├── InputError                  bad user input: exit 2
    │   ├── InvalidTarget           a target spec, file or name that does not parse/resolve
    │   └── InvalidOption           an option value out of range (names the field and range)
    ├── CaptureError                an unreadable, truncated or corrupt capture: exit 2
    ├── ReconEnvironmentError       the machine cannot do it: exit 3
    │   ├── PrivilegeError          no CAP_NET_RAW / not root
    │   └── LabError                the namespace lab cannot be built or found
    └── (KeyboardInterrupt is mapped to 130 by the CLI, not part of this tree)
"""

from __future__ import annotations

import math
import os
import shlex
import sys
from enum import IntEnum

__all__ = [
    "CaptureError",
    "ExitStatus",
    "InputError",
    "InvalidOption",
    "InvalidTarget",
    "LabError",
    "PrivilegeError",
    "ReconEnvironmentError",
    "ReconError",
    "check_range",
]


class ExitStatus(IntEnum):
    """Process exit codes (the README lists them under Commands)."""

    OK = 0  # at least one host up / one reply
    NONE = 1  # nothing answered
    USAGE = 2  # bad input
    ENVIRONMENT = 3  # privileges or environment
    INTERRUPTED = 130  # Ctrl-C


class ReconError(Exception):
    """Base of every error recon raises on purpose."""

    exit_status: ExitStatus = ExitStatus.USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}; {self.hint}"
        return self.message


class InputError(ReconError):
    """The user's input is wrong; the message names the bad part."""


class InvalidTarget(InputError):
    """A target spec that does not parse or a name that does not resolve."""

    FORMS = (
        "accepted forms: 198.18.0.1, 198.18.0.1-120, 198.18.0.1-198.18.1.10, "
        "198.18.0.0/24, 198.18.0-3.1-254, 2001:db8::1, 2001:db8::1-ff, 2001:db8::/120, "
        "fe80::1%eth0, ff02::1%eth0, a hostname, or comma lists of these"
    )
    SHOWN = 60  # a longer token is cut in the message, so the error stays one short line

    def __init__(self, token: str, reason: str, *, hint: str | None = None) -> None:
        self.token = token
        self.reason = reason
        shown = repr(token) if len(token) <= self.SHOWN else f"{token[:self.SHOWN]!r}… ({len(token):,} characters)"
        super().__init__(f"invalid target {shown}: {reason}", hint=hint or self.FORMS)


class InvalidOption(InputError):
    """An option value outside its allowed range."""

    SHOWN = InvalidTarget.SHOWN  # a longer value is cut in the message, so the error stays one short line

    def __init__(self, option: str, value: object, allowed: str) -> None:
        self.option = option
        self.value = value
        self.allowed = allowed
        shown = repr(value)
        if len(shown) > self.SHOWN:
            shown = f"{shown[:self.SHOWN]}… ({len(str(value)):,} characters)"
        super().__init__(f"invalid {option} {shown}: {allowed}")


def check_range(option: str, value: float | None, low: float, high: float, allowed: str, *,
                above_low: bool = False) -> None:
    """Raise ``InvalidOption(option, value, allowed)`` unless ``value`` is None or a number from ``low``
    to ``high`` (more than ``low`` when ``above_low``). NaN, infinities and booleans never pass. The one
    spelling of every numeric option's range; each caller keeps its own bounds and words."""
    if value is None:
        return
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or not (low < value if above_low else low <= value) or value > high):
        raise InvalidOption(option, value, allowed)


class CaptureError(ReconError):
    """A capture file that cannot be read (missing, truncated, unknown link type)."""


class ReconEnvironmentError(ReconError):
    """The machine cannot do what was asked (privileges, missing tools)."""

    exit_status = ExitStatus.ENVIRONMENT


class PrivilegeError(ReconEnvironmentError):
    """Raw sockets need CAP_NET_RAW."""

    # The interpreter that runs recon (the venv's python resolves to it), so setcap hits the right file.
    ADVICE = (
        "run it with sudo, or grant the capability once with "
        f"'sudo setcap cap_net_raw+ep {shlex.quote(os.path.realpath(sys.executable))}'"
    )

    def __init__(self, what: str = "this command", *, hint: str | None = None) -> None:
        super().__init__(
            f"{what} needs raw-socket privileges (CAP_NET_RAW)", hint=hint or self.ADVICE
        )


class LabError(ReconEnvironmentError):
    """The namespace lab cannot be built, found or torn down."""
