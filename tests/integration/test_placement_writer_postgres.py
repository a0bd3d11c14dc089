"""What only PostgreSQL can refuse: a batch with a guilty row is retried row by row."""

from __future__ import annotations

from datetime import timedelta

import pytest

from debtflow_core.ports.placement_writer import PlacementBatch
from tests.support.imports import T0, ImportPorts, import_ports, new_run, placement_row

pytestmark = pytest.mark.postgres


@pytest.fixture
def ports(request: pytest.FixtureRequest, postgres_engine) -> ImportPorts:
    return import_ports(request, "postgres")


async def test_a_refused_batch_is_retried_row_by_row_and_only_the_guilty_row_fails(ports):
    agency = await ports.agency()
    run = await ports.runs.add_or_get(new_run(agency.id))
    run = await ports.runs.start(run.id, attempt=0, at=T0)
    rows = [placement_row(n, f"A-{n}") for n in range(2, 7)]
    rows[2] = placement_row(4, "A-4", first_name="Nul\x00Byte")

    outcome = await ports.writer.write(
        PlacementBatch(
            run_id=run.id,
            attempt=run.attempt,
            agency_id=agency.id,
            rows=rows,
            errors=[],
            rows_read=5,
            lines_done=6,
            at=T0 + timedelta(minutes=3),
        )
    )

    assert (outcome.created, outcome.updated, outcome.failed) == (4, 0, 1)
    (failure,) = outcome.failures
    assert failure.line == 4
    assert failure.reason.startswith("the database refused the row: ")
    assert [a[0] for a in await ports.accounts(agency.id)] == ["A-2", "A-3", "A-5", "A-6"]
    stored = await ports.runs.get(agency.id, run.id)
    assert (stored.rows_read, stored.rows_created, stored.rows_failed) == (5, 4, 1)
    assert stored.progressed_at == T0 + timedelta(minutes=3)
    assert await ports.runs.errors(run.id, after_line=None, limit=5) == [failure]
