"""Text that comes from the data (words, file names, messages that quote them) made safe to show.

Vocabularies hold anything: web-crawl vectors have BBCode tokens such as ``[/url]``, and a word can
carry terminal escape sequences. Printed through rich as they are, the first is read as markup (a
crash, or ``[bold red]pwn[/bold red]`` shown as a red "pwn"), the second retitles or recolours the
terminal. :func:`safe` is the one way the command line renders such text: a rich ``Text`` (never
parsed as markup or emoji codes) in which every control or format character is written as its
Python escape (``\\x1b``, ``\\u202e``). The HTML report shows words through the same
:func:`visible` (then HTML-escaped), so a right-to-left override cannot reverse a row there either;
``--json`` carries the exact words.
"""

from __future__ import annotations

import unicodedata
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.text import Text

#: Unicode categories shown as escapes: controls (C0, DEL, C1), format characters (bidirectional
#: overrides, zero-width spaces), surrogates, line and paragraph separators.
_HIDDEN = {"Cc", "Cf", "Cs", "Zl", "Zp"}
#: Format characters that only join what they sit between (emoji sequences, Indic scripts): kept.
_JOINERS = {"\u200c", "\u200d"}


def _hidden(ch: str) -> bool:
    return unicodedata.category(ch) in _HIDDEN and ch not in _JOINERS


def visible(text: str) -> str:
    """``text`` with every control or format character replaced by its escape: ``"a\\x1b[31mb"``
    becomes the 11 characters ``a\\x1b[31mb``. Printable text (the usual case) comes back as it is."""
    if text.isprintable():
        return text
    return "".join(ch.encode("unicode_escape").decode("ascii") if _hidden(ch) else ch for ch in text)


def _rich_text() -> "type[Text]":
    """rich's ``Text``, imported on first use: the HTML report (imported by ``import sparsecode``)
    uses this module's :func:`html` too, and importing rich costs about 0.1 s (rich.color alone)."""
    from rich.text import Text

    return Text


def safe(text: object, style: str = "") -> "Text":
    """``str(text)`` made :func:`visible`, as a rich ``Text``: shown literally, whatever brackets,
    backslashes or colons it holds."""
    return _rich_text()(visible(str(text)), style=style)


def words(items, separator: str = ", ") -> "Text":
    """Words joined by ``separator``, each :func:`visible`, as one ``Text``."""
    return _rich_text()(separator.join(visible(w) for w in items))


def html(text: object) -> str:
    """``str(text)`` made :func:`visible`, then HTML-escaped: how the HTML pages show text from the
    data (words, file and benchmark names), as the terminal shows it."""
    return escape(visible(str(text)))


def error_line(message: object) -> "Text":
    """``error: MESSAGE``, the one line of a user error, with ``message`` :func:`safe`."""
    return _rich_text().assemble(("error:", "bold red"), " ", safe(message))
