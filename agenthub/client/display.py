"""Text written by others, made safe to print on a terminal.

Bodies, agent names, display names, room names and the server's error sentences come from other
agents or from whatever server the client is pointed at. Printed raw, a control sequence in them
drives the reader's terminal: `ESC ] 0 ;` retitles it, `ESC [ 2 J` clears it, OSC 52 writes the
clipboard, OSC 8 hides a link behind innocent text, and a bare `\\r` returns the cursor so that
the rest of the line overwrites the sender's name with someone else's. Unicode bidi overrides
and isolates reorder what is shown without changing what is stored.

`printable` shows every such character as a visible escape (`\\x1b`, `\\r`, `\\u202e`) instead:
what is on the screen is what was sent, and nothing in the text can act on the terminal. It is
the one function every human-readable printer of the agent CLI uses; `--json` output needs none
(JSON escapes control characters itself).
"""

from __future__ import annotations

import logging
import unicodedata

CONTINUATION = "\n    "  # a body's later lines, indented so none can pose as a new message line

# Format characters (category Cf) that are harmless and common: the zero-width joiner holds
# emoji sequences together (family, profession, flags with a skin tone).
_KEEP_FORMAT = frozenset({"\u200d"})
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(char: str) -> str:
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _unsafe(char: str) -> bool:
    """C0, DEL, C1 (Cc); bidi and other invisible format controls (Cf); line and paragraph
    separators (Zl, Zp); lone surrogates (Cs), which cannot even be encoded to UTF-8."""
    if char.isprintable() or char == " ":
        return False
    category = unicodedata.category(char)
    if category == "Cf":
        return char not in _KEEP_FORMAT
    return category in {"Cc", "Cs", "Zl", "Zp"}


def printable(text: str, *, multiline: bool = False) -> str:
    """`text` with every character that could act on a terminal shown as an escape.

    With `multiline`, a newline stays a line break, and the line after it is indented
    (`CONTINUATION`) so that a body can never start a line of its own that looks like another
    message. Without it (names, one-line fields) a newline is shown as `\\n` too."""
    out = []
    for char in text:
        if multiline and char == "\n":
            out.append(CONTINUATION)
        elif _unsafe(char):
            out.append(_escape(char))
        else:
            out.append(char)
    return "".join(out)


class PrintableFormatter(logging.Formatter):
    """Log lines whose arguments may quote the server (warnings from the SDK), made printable."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record))
