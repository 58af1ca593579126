"""The README's marked Python examples run as they are written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
_EXAMPLE = re.compile(r"<!-- example: ([\w-]+) -->\n```python\n(.*?)```", re.DOTALL)
EXAMPLES = dict(_EXAMPLE.findall(README.read_text()))


def test_the_readme_has_its_examples():
    assert "in-memory-bus" in EXAMPLES


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_readme_example_runs(name):
    exec(compile(EXAMPLES[name], f"README.md:{name}", "exec"), {"__name__": f"readme_{name}"})
