"""The one exception type the command line turns into a clean, one-line error."""


class SparsecodeError(Exception):
    """A problem with the user's input or environment, with a message that names the fix.

    The CLI prints ``error: <message>`` and exits non-zero, without a traceback. Library users
    catch it like any exception. Messages are one line and name the file involved.
    """
