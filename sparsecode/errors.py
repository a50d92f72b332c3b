"""The one exception type the command line turns into a clean, one-line error."""


class SparsecodeError(Exception):
    """A problem with the user's input or environment, with a message that names the fix.

    The CLI prints ``error: <message>`` and exits non-zero, without a traceback. Library users
    catch it like any exception. Messages are one line and name the file involved.
    """


class TrainingInterrupted(SparsecodeError):
    """SIGINT or SIGTERM stopped training after a checkpoint was written; ``--resume`` continues."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal number (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + self.signum


def first_line(exc: BaseException, limit: int | None = None) -> str:
    """An exception's message as a clause of a one-line error: its first non-empty line (its
    type's name when it has none), cut to ``limit`` characters when given."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:limit]
