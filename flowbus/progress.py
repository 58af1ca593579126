"""How far a long operation is, as plain lines that a terminal and a log both read well."""

from __future__ import annotations

from collections.abc import Callable

import click

__all__ = ["Progress"]


def _to_stderr(line: str) -> None:
    click.echo(line, err=True)


class Progress:
    """Counts what a long operation did and says so every tenth of ``total``.

    ``label`` starts each line (``"relay: published"`` gives ``relay: published 300/1000
    (30%)``). Once ``total`` is reached nothing more is printed: the operation caught up.
    :meth:`finish` prints where it got to, if the last line did not.
    """

    def __init__(
        self, label: str, total: int, *, echo: Callable[[str], object] = _to_stderr
    ) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._echo = echo
        self._shown = 0  # the count the last line showed

    def advance(self, count: int = 1) -> None:
        """``count`` more done; a line if that crossed into another tenth of the total."""
        before, self.done = self.done, self.done + count
        if before >= self.total:
            return
        if self.done >= self.total or self.done * 10 // self.total > before * 10 // self.total:
            self._line()

    def finish(self) -> None:
        """A last line, unless the last one already showed this count (or it caught up)."""
        if self._shown != self.done and self._shown < self.total:
            self._line()

    def _line(self) -> None:
        shown = min(self.done, self.total)
        percent = 100 * shown // self.total if self.total else 100
        self._echo(f"{self.label} {shown}/{self.total} ({percent}%)")
        self._shown = self.done
