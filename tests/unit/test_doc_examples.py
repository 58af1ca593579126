"""Every code block of README.md and docs/*.md is a file under examples/, shown as it is.

To add a sample: create the file under ``examples/`` and put
``<!-- example: examples/FILE -->`` on the line before its fenced block (see
``tests/support/doc_examples.py`` for the options and for output blocks). This test checks
the text; ``tests/integration/test_examples.py`` runs it.
"""

from __future__ import annotations

import pytest
from doc_examples import EXAMPLES_DIR, ROOT, all_blocks, blocks, missing_output

BLOCKS = all_blocks()
EXAMPLES = [block for block in BLOCKS if block.kind == "example"]


def test_every_block_names_its_file():
    unmarked = [
        f"{block.where} ({block.info or 'no language'})" for block in BLOCKS if not block.kind
    ]
    assert not unmarked, "code blocks without an <!-- example: --> or <!-- output: --> marker"


@pytest.mark.parametrize("block", EXAMPLES, ids=lambda block: block.where)
def test_block_shows_its_file(block):
    path = ROOT / block.path
    assert path.is_file(), f"{block.where}: {block.path} does not exist"
    assert block.text == path.read_text(), f"{block.where} differs from {block.path}"


def test_output_blocks_follow_their_example():
    for document_blocks in (blocks(document) for document in {b.document for b in BLOCKS}):
        shown = set()
        for block in document_blocks:
            if block.kind == "example":
                shown.add(block.path)
            elif block.kind == "output":
                assert block.info == "text", f"{block.where}: an output block is ```text"
                assert block.path in shown, f"{block.where}: {block.path} is not shown before"


def test_background_examples_are_one_command_with_an_output():
    outputs = {block.path for block in BLOCKS if block.kind == "output"}
    for block in EXAMPLES:
        if block.background:
            assert block.path in outputs, f"{block.where}: a background example needs an output"
            lines = block.text.rstrip("\n").split("\n")
            assert all(line.endswith("\\") for line in lines[:-1]), f"{block.where}: one command"


def test_exit_options_are_numbers():
    for block in EXAMPLES:
        assert (block.option("exit") or "0").isdigit(), block.where


def test_modules_are_imported_by_a_later_sample():
    for block in EXAMPLES:
        if block.module:
            dotted = block.path.removeprefix("examples/").removesuffix(".py").replace("/", ".")
            later = [b for b in EXAMPLES if b.document == block.document and b.line > block.line]
            assert any(dotted in (ROOT / b.path).read_text() for b in later), block.where


def test_not_run_examples_give_a_reason():
    for block in EXAMPLES:
        assert block.not_run != "", f"{block.where}: not-run needs a reason"


def test_examples_live_under_examples():
    for block in BLOCKS:
        if block.path:
            assert (ROOT / block.path).resolve().is_relative_to(EXAMPLES_DIR)


def test_output_lines_match_in_order_with_wildcards():
    printed = "starting\ncaluma-events[0]@4 id=ab-12 key=case-1\n  done  \n"
    assert missing_output("caluma-events[…]@… id=… key=case-1\ndone\n", printed) == []
    assert missing_output("done\ncaluma-events[…]@…", printed) == ["caluma-events[…]@…"]
    assert missing_output("caluma-events", printed) == ["caluma-events"]  # whole lines only


def test_blocks_are_found_inside_lists_too(tmp_path):
    document = tmp_path / "doc.md"
    document.write_text(
        "- a step:\n\n  <!-- example: examples/x.sh exit=1 -->\n  ```sh\n  false\n  ```\n"
        "- another:\n  ```\n  unmarked\n  ```\n"
    )
    marked, unmarked = blocks(document)
    assert (marked.kind, marked.path, marked.text, marked.option("exit")) == (
        "example",
        "examples/x.sh",
        "false\n",
        "1",
    )
    assert (unmarked.kind, unmarked.text) == (None, "unmarked\n")
