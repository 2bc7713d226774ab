"""Integration tests need the real database: mark them all. ``stocked``: the bundled bars
stored, which most runner tests trade on."""

import pytest
from sqlalchemy import Engine

from prism.data.sources import ArchBarSource
from prism.data.store import ingest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def stocked(engine: Engine) -> Engine:
    """The test's database with the bundled daily SPX and NDX bars ingested."""
    ingest(engine, ArchBarSource())
    return engine
