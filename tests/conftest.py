"""Shared test set-up.

A test that needs a host framework asks for it with ``require(module)``, and one that needs
the offline Fashion-MNIST files with ``require_fashion_mnist()``. Outside CI a missing
dependency skips the test; in CI (``CI=true``) every skip, whatever its cause, fails the
run, so a broken install can never pass as a green run with skipped tests.
"""
import importlib
import os

import pytest

IN_CI = os.environ.get('CI', '').lower() in ('1', 'true', 'yes')


def _missing(message: str):
    if IN_CI:
        pytest.fail(f'{message} (CI must provide every dependency of the tests)',
                    pytrace=False)
    pytest.skip(message, allow_module_level=True)


def require(module: str):
    """Import ``module`` or skip the calling test or module (fail in CI)."""
    try:
        return importlib.import_module(module)
    except Exception as exc:  # an installed host can also fail at import time
        _missing(f'{module} is not usable here: {type(exc).__name__}: {exc}')


def require_fashion_mnist(split: str = 'train'):
    """Load the offline Fashion-MNIST split or skip (fail in CI); see gkl_plugins.data."""
    from gkl_plugins.data import DataNotFoundError, load_fashion_mnist
    try:
        return load_fashion_mnist(split)
    except DataNotFoundError as exc:
        _missing(str(exc))


_skipped = []


def pytest_runtest_logreport(report):
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_collectreport(report):
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    if IN_CI and _skipped and exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if IN_CI and _skipped:
        terminalreporter.write_line(
            f'CI=true: {len(_skipped)} skipped test(s) count as failures: '
            + ', '.join(_skipped[:10]), red=True)
