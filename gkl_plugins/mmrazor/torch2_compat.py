"""Let mmrazor 1.0.0 import on torch >= 2.0.

mmrazor 1.0.0 (its last release) builds its quantization back-end tables when
``mmrazor.models`` is imported, using private torch helpers that torch 2 renamed or removed:
``reverse2``, ``reverse3`` and ``reverse_sequential_wrapper2`` of
``torch.ao.quantization.fuser_method_mappings``, the ``backend_config.utils`` submodule
(no longer imported with its package) and three private ``BackendPatternConfig`` setters.
mmrazor wraps the first failure in a placeholder, so the import ends with the misleading
"`torch>=1.13` is not installed properly". Distillation does not use any of these tables;
restoring the names is enough to import mmrazor, and nothing installed is modified.
"""
import importlib
import warnings
from typing import List

__all__ = ['restore_torch_names_for_mmrazor']

_OVERRIDE_SETTERS = ('_set_overwrite_output_fake_quantize', '_set_overwrite_output_observer',
                     '_set_input_output_observed')
_restored: List[str] = []


def _reverse_sequential_wrapper2(sequential):
    # torch < 2 listed fusion patterns last module first, so the fuser receives them swapped.
    def fuser_method(is_qat, second, first):
        return sequential(first, second)
    return fuser_method


def _recording_setter(attribute: str):
    def setter(self, value):
        setattr(self, attribute, value)
        return self
    return setter


def restore_torch_names_for_mmrazor() -> List[str]:
    """Restore the torch names mmrazor 1.0.0 imports, where they are missing; idempotent.

    Warns once, naming what was restored. Only the names absent from the running torch are
    touched, so on torch 1.13 this does nothing.

    Returns:
        list: The restored names (empty if nothing was missing).

    Note:
        The restored setters only record their value: torch 2 no longer reads it, so
        mmrazor's quantization back-ends are not faithful. Distillation, pruning and search
        do not use them.
    """
    try:
        fusers = importlib.import_module('torch.ao.quantization.fuser_method_mappings')
        backend_config = importlib.import_module('torch.ao.quantization.backend_config')
    except ImportError:  # a torch without these modules predates mmrazor's quantization
        return []
    restored = []
    for name, value in (('reverse2', getattr(fusers, '_reverse2', None)),
                        ('reverse3', getattr(fusers, '_reverse3', None)),
                        ('reverse_sequential_wrapper2', _reverse_sequential_wrapper2)):
        if not hasattr(fusers, name) and value is not None:
            setattr(fusers, name, value)
            restored.append(f'{fusers.__name__}.{name}')
    if not hasattr(backend_config, 'utils'):
        importlib.import_module('torch.ao.quantization.backend_config.utils')
        restored.append(f'{backend_config.__name__}.utils (imported)')
    pattern_config = backend_config.BackendPatternConfig
    for name in _OVERRIDE_SETTERS:
        if not hasattr(pattern_config, name):
            setattr(pattern_config, name, _recording_setter(name[len('_set'):]))
            restored.append(f'BackendPatternConfig.{name}')

    if restored and not _restored:
        warnings.warn(
            'gkl_plugins restored torch names that mmrazor 1.0.0 imports but torch '
            f'{_torch_version()} renamed or removed: {", ".join(restored)}. This only makes '
            '`import mmrazor.models` work; mmrazor\'s quantization back-ends built on these '
            'names are not faithful on this torch, distillation is unaffected.',
            UserWarning, stacklevel=2)
    _restored.extend(restored)
    return restored


def _torch_version() -> str:
    import torch
    return torch.__version__
