"""What the load stage reports: a problem at a place in the batch's files, and
the error that stops a batch. Apart from ``load`` (pydantic, PyYAML) so that
commands that only read the manifest can name them without loading those."""
from __future__ import annotations

from dataclasses import dataclass


def quoted(value) -> str:
    """A value in a message, in quotes as it was typed: repr() doubled each backslash (an id
    typed ``..\\x`` was shown as ``'..\\\\x'``, a value nobody typed). A character no terminal
    shows (a tab, a control character) is still written as its escape, as repr() writes it."""
    if not isinstance(value, str):
        return repr(value)
    shown = "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in value)
    return f'"{shown}"' if "'" in shown and '"' not in shown else f"'{shown}'"


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    column: int | None
    recipient: str | None
    field: str
    message: str
    warning: bool = False
    index: int | None = None  # the recipient's position in the file, if any
    row: int | None = None  # in a spreadsheet: the row and the column's header
    header: str | None = None

    def place(self, file: str | None = None) -> str:
        """Where: the file (or ``file``), then its row and column, or line and column."""
        where = self.file if file is None else file
        if self.row is not None:
            where += f":row {self.row}" + (f":{self.header}" if self.header else "")
        elif self.line is not None:
            where += f":{self.line}:{self.column}"
        return where

    def __str__(self) -> str:
        where = self.place()
        shown = self.field if self.row is None or not self.header else ""
        who = (f"recipient {quoted(self.recipient)}" + (", " if shown else ": ")) if self.recipient else ""
        what = f"field {quoted(shown)}: " if shown else ""
        kind = "warning" if self.warning else "error"
        return f"{where}: {kind}: {who}{what}{self.message}"


class LoadError(Exception):
    """recipients.yaml could not be used; ``problems`` says why, all at once."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
