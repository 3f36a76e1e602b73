"""Loading mmengine checkpoints with ``torch.load(weights_only=True)``, torch's default
since 2.6.

An mmengine 0.10 checkpoint stores the runner's ``MessageHub``: ``HistoryBuffer`` objects
holding numpy arrays, and the buffer's statistics functions, which pickle refers to as
``getattr(HistoryBuffer, 'mean')``. torch's safe unpickler rejects all of these, so resuming
or loading a teacher fails. Instead of turning the safe loading off, this module
allow-lists exactly those objects; ``getattr`` is replaced, for unpickling only, by a
function that can read nothing but the statistics methods of ``HistoryBuffer``.
"""
import pickle
from typing import Any

import numpy as np
import torch
from mmengine.logging import HistoryBuffer, print_log

__all__ = ['allow_mmengine_checkpoints']

_done = False
_BUILTIN_STATISTICS = frozenset(('min', 'max', 'current', 'mean'))


def _history_buffer_attribute(owner: Any, name: str) -> Any:
    """Stand-in for ``getattr`` while unpickling: only ``HistoryBuffer``'s statistics."""
    # HistoryBuffer fills its table of statistics lazily, so the built-in ones are listed.
    allowed = _BUILTIN_STATISTICS.union(HistoryBuffer._statistics_methods)
    if owner is HistoryBuffer and name in allowed:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'refusing getattr({owner!r}, {name!r}) while loading with weights_only=True; only '
        'the statistics methods of mmengine HistoryBuffer are allowed. Load this file with '
        'weights_only=False only if you trust where it comes from.')


def _numpy_globals() -> list:
    multiarray = getattr(np, '_core', None) or np.core
    names = {
        'reconstruct': multiarray.multiarray._reconstruct,
        'scalar': multiarray.multiarray.scalar,
    }
    # numpy 2 renamed numpy.core to numpy._core; checkpoints written under either name load.
    found = []
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        found.append((names['reconstruct'], f'{module}._reconstruct'))
        found.append((names['scalar'], f'{module}.scalar'))
    found += [np.ndarray, np.dtype]
    found += [type(np.dtype(code)) for code in '?bBhHiIlLqQefdgFDG']
    return found


def allow_mmengine_checkpoints() -> bool:
    """Let ``torch.load(weights_only=True)`` read mmengine checkpoints; idempotent.

    Returns:
        bool: True if the allow-list was (or had been) installed, False on a torch without
        ``torch.serialization.add_safe_globals`` (before 2.4), where nothing is needed.
    """
    global _done
    if _done:
        return True
    if not hasattr(torch.serialization, 'add_safe_globals'):
        return False
    torch.serialization.add_safe_globals(
        [HistoryBuffer, (_history_buffer_attribute, 'builtins.getattr')] + _numpy_globals())
    _done = True
    print_log(
        'gkl_plugins: allow-listed mmengine HistoryBuffer, numpy arrays and scalars, and '
        "getattr restricted to HistoryBuffer's statistics methods for "
        'torch.load(weights_only=True), so that mmengine checkpoints (which store the '
        "runner's message hub) load and resume on torch >= 2.6 without "
        'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD; no other object becomes loadable.',
        logger='current')
    return True
