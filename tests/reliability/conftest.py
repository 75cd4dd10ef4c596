"""Both HTTP transports, and the cells of the reliability matrices that do not apply.

Every test here runs once per HTTP transport (``tests/transports.py``). A test module may
define ``deselect(item) -> bool``; the items it names are removed at collection
(reported as "deselected", never as skips), so the skip count stays a signal of missing
infrastructure rather than of matrix shape.
"""

from __future__ import annotations

import pytest

from tests.transports import transport, transport_setting

__all__ = ["pytest_collection_modifyitems", "transport", "transport_setting"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop the items their module's ``deselect`` names."""
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        rule = getattr(getattr(item, "module", None), "deselect", None)
        (dropped if rule is not None and rule(item) else keep).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
