"""Errors a user can cause. Each message says what is wrong and how to fix it."""


class MTLLabError(Exception):
    """Base of every error MTL Lab raises for a user's input or a user's run."""


class ConfigError(MTLLabError, ValueError):
    """An experiment configuration is invalid (names the field and the fix)."""


class DataError(MTLLabError, ValueError):
    """A dataset or data file cannot be used (names the file, column and rows)."""


class TrainingError(MTLLabError, RuntimeError):
    """A run failed while training (e.g. a non-finite loss), naming task and step."""


class RunCancelled(MTLLabError):
    """Raised inside the engine when the sink asks the run to stop."""


class StoreError(MTLLabError):
    """A run store request cannot be served (unknown run id, a damaged store, ...)."""


class DiskFullError(StoreError):
    """The disk holding the run store (or a run's log) is full (names the folder)."""


class OutputError(MTLLabError):
    """A file the user asked MTL Lab to write cannot be written (names the path and the fix)."""
