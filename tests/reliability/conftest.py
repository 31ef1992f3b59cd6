"""The 10-minute soak runs only when a -m expression names it (`pytest -m soak`), never by default."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "soak" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="soak test: run with -m soak")
    for item in items:
        if item.get_closest_marker("soak"):
            item.add_marker(skip)
