"""`Progress`: a line at each tenth of the total, none once it caught up."""

from __future__ import annotations

from flowbus.progress import Progress


def counted(total: int) -> tuple[Progress, list[str]]:
    lines: list[str] = []
    return Progress("replayed", total, echo=lines.append), lines


def test_one_line_per_tenth_and_the_last_at_the_total() -> None:
    progress, lines = counted(25)
    for _ in range(25):
        progress.advance()
    assert [line.split()[1] for line in lines] == [
        "3/25", "5/25", "8/25", "10/25", "13/25", "15/25", "18/25", "20/25", "23/25", "25/25",
    ]  # fmt: skip
    assert lines[-1] == "replayed 25/25 (100%)"
    progress.advance(5)  # past the total (more arrived meanwhile): it has caught up
    progress.finish()
    assert len(lines) == 10


def test_batches_skip_the_tenths_they_jump_over() -> None:
    progress, lines = counted(1000)
    for batch in (100, 100, 250, 550):
        progress.advance(batch)
    assert lines == [
        "replayed 100/1000 (10%)",
        "replayed 200/1000 (20%)",
        "replayed 450/1000 (45%)",
        "replayed 1000/1000 (100%)",
    ]


def test_finish_says_where_an_interrupted_operation_got_to() -> None:
    progress, lines = counted(1000)
    progress.advance(120)
    progress.finish()
    progress.advance(5)
    progress.finish()
    assert lines == ["replayed 120/1000 (12%)", "replayed 125/1000 (12%)"]


def test_nothing_to_do_prints_nothing() -> None:
    progress, lines = counted(0)
    progress.advance(3)
    progress.finish()
    assert lines == []
