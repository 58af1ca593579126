"""The code blocks of README.md and docs/*.md, and the files under examples/ they show.

Every fenced block is preceded by a marker line (an HTML comment, invisible on GitHub):

* ``<!-- example: examples/PATH [OPTION ...] -->``: the block is the file's whole content.
  Options: ``background`` (a long-running command: started, stopped with SIGTERM once its
  output block's lines appeared, exit 0 expected), ``exit=N`` (the exit status expected),
  ``module`` (a Python module that later samples import, not run by itself),
  ``not-run="why"`` (checked for equality only; the reason is said in the Markdown source).
* ``<!-- output: examples/PATH -->`` before a ```` ```text ```` block: what that example
  prints. Each non-blank line must appear, in order, among the lines it printed; ``…``
  stands for any text (ids, times).
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES_DIR = ROOT / "examples"
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_MARKER = re.compile(r"^\s*<!-- (example|output): (examples/\S+)(.*?) -->$")
_FENCE = re.compile(r"^(\s*)(```+|~~~+)(.*)$")  # indented too: a block inside a list


@dataclasses.dataclass(frozen=True)
class Block:
    """One fenced code block, with the marker line right before it (if any)."""

    document: Path
    line: int  # 1-based line of the opening fence
    info: str
    text: str
    kind: str | None = None  # "example", "output" or None (no marker)
    path: str | None = None  # relative to the repository root
    options: tuple[tuple[str, str], ...] = ()

    @property
    def where(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"

    def option(self, name: str) -> str | None:
        return dict(self.options).get(name)

    @property
    def background(self) -> bool:
        return "background" in dict(self.options)

    @property
    def module(self) -> bool:
        return "module" in dict(self.options)

    @property
    def not_run(self) -> str | None:
        return self.option("not-run")


def _options(text: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for word in shlex.split(text):
        name, _, value = word.partition("=")
        pairs.append((name, value))
    return tuple(pairs)


def blocks(document: Path) -> list[Block]:
    """The fenced code blocks of one Markdown document, in order."""
    lines = document.read_text().splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        indent, fence, info = opening.group(1), opening.group(2), opening.group(3).strip()
        end = index + 1
        while end < len(lines) and lines[end].strip() != fence:
            end += 1
        text = "".join(line.removeprefix(indent) + "\n" for line in lines[index + 1 : end])
        marker = _MARKER.match(lines[index - 1]) if index else None
        if marker:
            block = Block(
                document, index + 1, info, text,
                kind=marker.group(1), path=marker.group(2), options=_options(marker.group(3)),
            )  # fmt: skip
        else:
            block = Block(document, index + 1, info, text)
        found.append(block)
        index = end + 1
    return found


def all_blocks() -> list[Block]:
    return [block for document in DOCUMENTS for block in blocks(document)]


def output_pattern(line: str) -> re.Pattern[str]:
    """A line of an output block as a pattern: ``…`` matches any text."""
    return re.compile(".*".join(re.escape(part) for part in line.strip().split("…")))


def missing_output(expected: str, printed: str) -> list[str]:
    """The lines of ``expected`` not found, in order, among the lines of ``printed``
    (each expected line matching a whole printed line, surrounding blanks aside)."""
    remaining = [line.strip() for line in printed.splitlines()]
    missing = []
    for line in filter(str.strip, expected.splitlines()):
        pattern = output_pattern(line)
        for position, candidate in enumerate(remaining):
            if pattern.fullmatch(candidate):
                remaining = remaining[position + 1 :]
                break
        else:
            missing.append(line)
    return missing
