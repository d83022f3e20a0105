"""Errors that users can act on, each with a documented exit code.

The CLI maps every :class:`EdgepruneError` to its ``exit_code`` and prints its
message; any other exception is a bug and is shown with its traceback (exit 1).

Exit codes (also in the README):

====  =====================================================================
0     every budget met, nothing regressed
1     internal error: a bug in edgeprune (a traceback is printed)
2     bad input or configuration: a model, data, target or recipe file
3     a budget was missed or a regression check failed
4     the device or its runtime could not be reached or prepared
====  =====================================================================
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_BUDGET = 3
EXIT_DEVICE = 4


class EdgepruneError(Exception):
    """An error caused by input, configuration or environment, not by a bug.

    Args:
        what: what was found, in one sentence.
        where: the file, field or layer it concerns.
        expected: what would have been valid.
        fix: what the user can do about it.
    """

    exit_code = EXIT_BAD_INPUT

    def __init__(self, what: str, *, where: str | None = None,
                 expected: str | None = None, fix: str | None = None):
        super().__init__(what)
        self.what = what
        self.where = where
        self.expected = expected
        self.fix = fix

    def __str__(self) -> str:
        head = f"{self.where}: {self.what}" if self.where else self.what
        lines = [head]
        if self.expected:
            lines.append(f"  expected: {self.expected}")
        if self.fix:
            lines.append(f"  fix: {self.fix}")
        return "\n".join(lines)


class InputError(EdgepruneError):
    """A model or data file that cannot be used."""


class ConfigError(EdgepruneError):
    """A target profile, recipe or option that is invalid or inconsistent."""


class DeviceError(EdgepruneError):
    """A device (emulated, microcontroller or over SSH) or its runtime is unavailable."""

    exit_code = EXIT_DEVICE


class UnsupportedError(EdgepruneError):
    """The model uses something the target's runtime cannot run (an op, a dtype)."""
