"""One exception family for every problem a user can fix (exit code 2)."""

from __future__ import annotations


class SpectralProbeError(Exception):
    """Base of the domain errors; the CLI turns it into one line on stderr and exit code 2."""


class InputError(SpectralProbeError):
    """A file could not be used: missing, truncated, corrupt, non-finite, wrong shape, unknown operator."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path) if path is not None else None
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class ResourceError(InputError):
    """The machine, not the file: not enough memory to load or probe it. Still exit 2, but an audit's
    ``--resume`` tries the checkpoint again (on a larger machine, or with fewer ``--jobs``, it may fit)."""


class UsageError(SpectralProbeError):
    """Bad command-line or config usage (an unknown option value, a gate on an uncomputed quantity)."""


class OptionError(UsageError):
    """An option value that the library layers (Jacobian, probe, operators) cannot use.

    Raised below the CLI, whichever front end the value came from (command line, config file,
    Python API); a :class:`UsageError`, so every caller that handles usage errors handles it.
    """


class OutputError(SpectralProbeError):
    """An output that cannot be written (a full disk, a read-only folder, a path that is an input)."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def raise_if_interrupt(exc: BaseException) -> None:
    """Re-raise Ctrl-C (and a closing generator); anything else that user code (an operator plugin, a
    factory) raises is its failure, ``sys.exit(7)`` and a ``BaseException`` subclass included: an
    :class:`InputError` naming the file (exit 2), never an exit code of its own choosing."""
    if isinstance(exc, KeyboardInterrupt | GeneratorExit):
        raise exc
