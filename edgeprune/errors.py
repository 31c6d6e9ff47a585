"""The error types the command line translates into one-line messages and exit codes."""

from __future__ import annotations


class EdgepruneError(Exception):
    """A problem with what the user gave us. The message says what is wrong and what to do.

    The CLI prints it on one line and exits with ``exit_code``; anything else is an internal bug.
    """

    exit_code = 2


class InputError(EdgepruneError):
    """Bad usage or bad input: a missing file, a file that is not ONNX, a plan for another model..."""


class BudgetError(EdgepruneError):
    """A budget or a guard that cannot be met (exit code 1)."""

    exit_code = 1


class VerificationError(EdgepruneError):
    """The pruned model does not match the masked original: the proof failed, so nothing is written."""

    exit_code = 1
