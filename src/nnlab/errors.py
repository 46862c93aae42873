"""Errors a user can cause and fix: the CLI prints the message on one line and exits 1."""


class NnlabError(Exception):
    """A bad flag value, path or file, or a run that cannot go on (say a NaN loss)."""


class ConfigError(NnlabError, ValueError):
    """A configuration value out of range."""


class WriteFailed(NnlabError):
    """A file could not be written (a full disk, a quota, a read-only or failing disk): what
    was written before stays, and a run can go on once it is fixed."""


class TrainingDiverged(NnlabError):
    """The loss became NaN or infinite."""


class Interrupted(Exception):
    """SIGINT or SIGTERM stopped a run (after a checkpoint, when one could be written).

    Not an NnlabError: the CLI exits 128 + the signal's number (130 for Ctrl-C, 143 for
    SIGTERM) and prints the command that resumes the run.
    """

    def __init__(self, signum: int, where: str = "") -> None:
        super().__init__(signum, where)
        self.signum, self.where = signum, where
        self.resume: str | None = None  # the command that resumes it, once known
