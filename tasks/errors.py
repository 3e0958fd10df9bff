"""Errors the pipeline raises on purpose, split by whether a retry can help."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input or parameters: deterministic, so retrying cannot help.

    The message names what is wrong (file, column, parameter) so it can be fixed.
    """


class OutputConflictError(InputError):
    """The output location holds something this project did not write."""


class OutputBusyError(RuntimeError):
    """Another run holds the output; retrying at once would not help."""


class TransientPartError(RuntimeError):
    """One part failed for a reason a retry may get past (throttling, a dropped
    connection): Ray Data retries that part alone, and the stage if it keeps failing."""


class DeadlineExceeded(RuntimeError):
    """The run went past its timeout: what it was writing is not committed, and a retry
    would only go further past it."""
