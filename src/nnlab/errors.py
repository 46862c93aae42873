"""Errors a user can cause and fix: the CLI prints the message on one line and exits 1."""


class NnlabError(Exception):
    """A bad flag value, path or file, or a run that cannot go on (say a NaN loss)."""


class ConfigError(NnlabError, ValueError):
    """A configuration value out of range."""


class TrainingDiverged(NnlabError):
    """The loss became NaN or infinite."""
