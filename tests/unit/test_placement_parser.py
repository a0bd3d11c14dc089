"""A placement file parsed by a child process: the same batches as parsing it here, the
file's rejection and the child's failures told, the child stopped however the block ends."""

from __future__ import annotations

from pathlib import Path

import pytest

from debtflow_core.placement import PlacementFileRejected
from debtflow_core.placement_parser import (
    BATCH_ROWS,
    Chunk,
    ParseRequest,
    PlacementParser,
    chunks,
)
from tests.support.imports import placement_text


def request(path: Path, *, skip_through: int = 0) -> ParseRequest:
    return ParseRequest(path=str(path), delimiter=",", column_mapping={}, skip_through=skip_through)


async def parsed(parser: PlacementParser) -> list[Chunk]:
    found = []
    while (chunk := await parser.next()) is not None:
        found.append(chunk)
    return found


async def test_the_child_hands_over_the_batches_that_parsing_here_makes(tmp_path):
    path = tmp_path / "placement.csv"
    path.write_text(placement_text(2 * BATCH_ROWS + 10, bad_every=7), newline="")
    here = list(
        chunks(path, delimiter=",", column_mapping={}, skip_through=500, on_header=lambda _: None)
    )

    async with PlacementParser(request(path, skip_through=500)) as parser:
        there = await parsed(parser)

    assert there == here
    assert [c.rows_read for c in there] == [BATCH_ROWS, 511]  # lines 501 to 2011
    assert sum(len(c.errors) for c in there) > 0


async def test_columns_the_file_has_beyond_the_format_are_named_once_it_is_done(tmp_path):
    path = tmp_path / "placement.csv"
    lines = placement_text(3).splitlines()
    path.write_text("\n".join([f"{lines[0]},colour", *(f"{line},blue" for line in lines[1:])]))

    async with PlacementParser(request(path)) as parser:
        assert len(await parsed(parser)) == 1
        assert parser.ignored_columns == ("colour",)


async def test_a_file_missing_a_required_column_is_rejected_with_its_reason(tmp_path):
    path = tmp_path / "placement.csv"
    path.write_text("account_id,debtor_id\nA-1,D-1\n")

    async with PlacementParser(request(path)) as parser:
        with pytest.raises(PlacementFileRejected, match="required columns are missing: first_name"):
            await parser.next()


async def test_a_failure_in_the_child_is_raised_with_what_it_was(tmp_path):
    async with PlacementParser(request(tmp_path / "gone.csv")) as parser:
        with pytest.raises(RuntimeError, match="placement parser failed: FileNotFoundError"):
            await parser.next()


async def test_a_child_that_dies_without_a_word_is_an_error_not_the_end_of_the_file(tmp_path):
    path = tmp_path / "placement.csv"
    path.write_text(placement_text(5 * BATCH_ROWS))

    async with PlacementParser(request(path)) as parser:
        assert await parser.next() is not None
        parser._process.kill()
        with pytest.raises(RuntimeError, match="placement parser stopped"):
            await parsed(parser)


async def test_leaving_the_block_early_stops_the_child(tmp_path):
    path = tmp_path / "placement.csv"
    path.write_text(placement_text(20 * BATCH_ROWS))

    with pytest.raises(ZeroDivisionError):
        async with PlacementParser(request(path)) as parser:
            await parser.next()
            1 / 0  # noqa: B018

    assert parser._process.returncode is not None


async def test_modules_in_the_working_directory_do_not_replace_the_childs(tmp_path, monkeypatch):
    path = tmp_path / "placement.csv"
    path.write_text(placement_text(3))
    (tmp_path / "csv.py").write_text("raise ImportError('not the standard library')\n")
    monkeypatch.chdir(tmp_path)

    async with PlacementParser(request(path)) as parser:
        assert [len(c.rows) for c in await parsed(parser)] == [3]
