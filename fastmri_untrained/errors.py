"""Errors raised for bad input (each names the file or argument and the problem), and the
interruption a SIGTERM causes."""

from __future__ import annotations


class InputError(ValueError):
    """Bad user input: a file or argument that cannot be used, with the reason.

    Library code names an argument by its parameter name (``center_fractions``); the command
    line reports it under its flag (``--center-fractions``).
    """

    def __init__(self, source, problem: str):
        self.source = str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")


class Terminated(KeyboardInterrupt):
    """A run stopped by SIGTERM (a scheduler's, or ``kill``'s); handled as Ctrl-C is: finished
    volumes kept, no partial file (``lightning.sigterm_as_interrupt``)."""
