"""The project's user-facing error types.

Anything a user can cause (a bad name, a missing file, a malformed string) raises a subclass of
:class:`NasSuiteError`. The CLI turns these into one line on stderr and exit code 2; anything else is a
bug and keeps its traceback.
"""


class NasSuiteError(Exception):
    """Base class of every error a user can cause and fix."""


class ArchStringError(NasSuiteError, ValueError):
    """A string that is not a valid NB201 cell."""


class ConfigError(NasSuiteError, ValueError):
    """An unknown method/preset, a bad seed count, a malformed or unknown ``--set`` override."""


class DataError(NasSuiteError):
    """A dataset folder or file that is missing or not in the expected format."""


class BenchmarkError(NasSuiteError):
    """A benchmark file that is missing, of the wrong kind, or lacks the queried cell."""


class StoreError(NasSuiteError):
    """A results folder that cannot be written, or a stored record that cannot be read."""
