"""The one exception type the command line turns into a clean, one-line error."""

import re


class SparsecodeError(Exception):
    """A problem with the user's input or environment, with a message that names the fix.

    The CLI prints ``error: <message>`` and exits non-zero, without a traceback. Library users
    catch it like any exception. Messages are one line and name the file involved.
    """


class NotFittedError(SparsecodeError, ValueError, AttributeError):
    """An estimator used before it was fitted: a ``ValueError`` and an ``AttributeError`` as
    scikit-learn's ``NotFittedError`` is (``hasattr`` is False for what needs the fit)."""


class TrainingInterrupted(SparsecodeError):
    """SIGINT or SIGTERM stopped training after a checkpoint was written; ``--resume`` continues."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal number (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + self.signum


#: A terminal's escape sequence (colours, bold): some libraries put them in their messages.
_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def first_line(exc: BaseException, limit: int | None = None) -> str:
    """An exception's message as a clause of a one-line error: its first non-empty line (its
    type's name when it has none), without terminal escape sequences. A line longer than
    ``limit`` characters keeps its whole sentences within the limit (or its whole words, and
    ``...``), never half a sentence."""
    lines = [line.strip() for line in _ESCAPE.sub("", str(exc)).splitlines() if line.strip()]
    line = lines[0] if lines else type(exc).__name__
    if limit is None or len(line) <= limit:
        return line
    cut = line[: limit + 1]
    end = cut.rfind(". ")
    if end > 0:
        return cut[:end]
    return cut[: cut.rfind(" ")].rstrip(",;:") + "..." if " " in cut else cut[:limit] + "..."


class SettingError(SparsecodeError):
    """A setting given a value it cannot take; ``setting`` is the setting's name.

    ``template`` writes a setting as ``{name}`` and a value as ``{key}``, taken from ``values``.
    The message writes each setting as Python names it (``hidden must be at least 1 (got 0)``,
    ``pass force=True to overwrite it``);
    :meth:`naming` writes them as the caller names them (the CLI: ``--hidden must be ...``).
    """

    def __init__(self, setting: str, template: str, **values):
        self.setting, self.template, self.values = setting, template, values
        super().__init__(self.naming(python_name))

    def naming(self, name) -> str:
        """The message with every setting written as ``name(setting)``."""
        return name_settings(self.template, name, self.values)


#: Settings that are switches: a Python caller turns them on as ``name=True``.
SWITCHES = ("force", "resume")


def python_name(setting: str) -> str:
    """How a Python caller names a setting in a message: its name, ``force=True`` for a switch."""
    return f"{setting}=True" if setting in SWITCHES else setting


def need(ok: bool, setting: str, template: str, **values) -> None:
    """Raise :class:`SettingError` (``setting``, ``template``, ``values``) unless ``ok``."""
    if not ok:
        raise SettingError(setting, template, **values)


def name_settings(template: str, name, values: dict | None = None) -> str:
    """``template`` with each ``{setting}`` written as ``name(setting)`` and each ``{key}`` of
    ``values`` as its value (format specs apply: ``{got!r}``)."""
    return template.format_map(_Names(values or {}, name))


class _Names(dict):
    """A template's values; any other key is a setting, written as ``name`` says."""

    def __init__(self, values: dict, name):
        super().__init__(values)
        self.name = name

    def __missing__(self, key: str) -> str:
        return self.name(key)
