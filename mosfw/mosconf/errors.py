"""mos.conf errors and diagnostics: messages that name file, line and column."""

from __future__ import annotations

# ---------------------------------------------------------------------------
# errors and diagnostics


def _where(filename: str | None, line: int | None, column: int | None) -> str:
    parts = [str(p) for p in (filename, line, column) if p is not None]
    return ":".join(parts) + ": " if parts else ""


class ConfigError(Exception):
    """A mos.conf that cannot be used.

    ``str(err)`` is one line in the compiler style
    ``mos.conf:7:12: error: <message>``; the parts that are not known are
    left out (``mos.conf: error: ...`` for a file that cannot be read,
    ``error: ...`` for a bad command-line override).
    """

    def __init__(
        self,
        message: str,
        filename: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.message = message
        """The message without the location prefix."""
        self.filename = filename
        """The file name as given to :func:`load_config` / :func:`parse_config`, or None."""
        self.line = line
        """1-based line number, or None."""
        self.column = column
        """1-based column (characters; a tab counts as one), or None."""
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{_where(self.filename, self.line, self.column)}error: {self.message}"

    def __reduce__(self):  # keep it picklable across worker processes
        return (type(self), (self.message, self.filename, self.line, self.column))


class Diagnostic(str):
    """A note or warning: a ``str`` (``mos.conf:12: warning: ...``) that
    also carries ``kind`` ("note" or "warning"), ``message``, ``filename``,
    ``line`` and ``key`` (the key or block name it is about)."""

    kind: str
    message: str
    filename: str | None
    line: int | None
    key: str | None

    def __new__(
        cls,
        kind: str,
        message: str,
        filename: str | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> Diagnostic:
        self = super().__new__(cls, f"{_where(filename, line, None)}{kind}: {message}")
        self.kind = kind
        self.message = message
        self.filename = filename
        self.line = line
        self.key = key
        return self

    def __reduce__(self):
        return (Diagnostic, (self.kind, self.message, self.filename, self.line, self.key))


class _Invalid(Exception):
    """A value problem; the caller adds the location."""
