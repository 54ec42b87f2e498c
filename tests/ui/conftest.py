"""Browser-test plumbing: each test's outcome is exposed to its fixtures.

The `page` fixture of test_dagster_ui.py reads `request.node.rep_call` in its teardown to take
a screenshot of the page a failing test was looking at, and to print where the screenshots are.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
