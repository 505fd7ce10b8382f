"""Errors raised for bad input: each names the file (or argument) and the problem."""

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
