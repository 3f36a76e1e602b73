"""Shared test set-up.

A test that needs a host framework asks for it with ``require(module)``. Outside CI a
missing host skips the test; in CI (``CI=true``) it fails, so a broken install can never
pass as a green run with skipped tests.
"""
import importlib
import os

import pytest

IN_CI = os.environ.get('CI', '').lower() in ('1', 'true', 'yes')


def require(module: str):
    """Import ``module`` or skip the calling test (fail in CI)."""
    try:
        return importlib.import_module(module)
    except Exception as exc:  # an installed host can also fail at import time
        message = f'{module} is not usable here: {type(exc).__name__}: {exc}'
        if IN_CI:
            pytest.fail(f'{message} (CI must install every host framework)', pytrace=False)
        pytest.skip(message)


def pytest_collection_modifyitems(config, items):
    # Keep the CI contract even for tests that skip by other means.
    if not IN_CI:
        return
    for item in items:
        for mark in item.iter_markers('skip'):
            raise pytest.UsageError(f'{item.nodeid} is marked skip, which CI does not allow: '
                                    f'{mark.kwargs.get("reason", "")}')
