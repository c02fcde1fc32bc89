"""Shared test setup: pytest puts this directory on sys.path (rootdir-relative "prepend"
import mode), so every test module, tests/kernels included, can ``from parity import ...``.

Test tiers: a test marked ``browser``, ``mpi`` or ``native`` whose requirement is missing is
skipped with the reason on a developer's machine and fails under ``CI=true``, so CI cannot
pass by skipping a tier."""

from __future__ import annotations

import os

import pytest

from tier_requirements import TIERS


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_runtest_setup(item: pytest.Item) -> None:
    for name, check in TIERS.items():
        if item.get_closest_marker(name) is None:
            continue
        met, reason = check()
        if met:
            continue
        if _in_ci():
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)


BACKEND_PARAMS = [
    pytest.param("numpy", id="numpy"),
    pytest.param("reference", marks=pytest.mark.slow, id="reference"),
    pytest.param("native", marks=pytest.mark.native, id="native"),
]


@pytest.fixture(params=BACKEND_PARAMS)
def backend(request):
    """Run the test under each kernel backend (convscope.backends.use), restored afterwards.

    The reference backend's sweeps are in the slow tier (tests/test_backends.py runs a reduced
    reference set in the default tier); native needs the compiled backend (native tier)."""
    from convscope import backends

    with backends.use(request.param):
        yield request.param
