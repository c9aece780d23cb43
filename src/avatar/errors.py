"""The one error type users see.

Every failure a user can cause or fix (bad input file, no face, empty text) is raised as
an :class:`AvatarError` carrying *what* went wrong, *which* file or option, and *what to
do*. The CLI prints it as one line; the Python API lets it propagate.
"""

from __future__ import annotations

# The exit codes of every command (and of each batch job in its manifest record).
EXIT_USER_ERROR = 2  # a problem with the inputs: AvatarError
EXIT_INTERNAL_ERROR = 1  # our bug
EXIT_INTERRUPTED = 130  # Ctrl-C


class AvatarError(Exception):
    """A user-facing error: ``what`` happened, to ``where``, and ``hint`` for the fix."""

    def __init__(self, what: str, where: str | None = None, hint: str | None = None):
        self.what = what
        self.where = where
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        parts = [self.what]
        if self.where:
            parts[0] = f"{self.where}: {self.what}"
        if self.hint:
            parts.append(self.hint)
        return " - ".join(parts)
