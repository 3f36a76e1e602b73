"""mmrazor 1.0.0 imports on torch 2 once gkl_plugins.mmrazor restored the names it needs.

Each check runs in a fresh interpreter, since an import can only be observed once.
"""
import json
import subprocess
import sys

import torch.nn as nn

from tests.conftest import require

_PROBE = '''
import importlib, json, warnings
fusers = importlib.import_module('torch.ao.quantization.fuser_method_mappings')
missing = not hasattr(fusers, 'reverse2')
result = {'missing': missing}
if MODE == 'plain':
    try:
        import mmrazor.models  # noqa
        result['error'] = None
    except ImportError as exc:
        result['error'] = str(exc)
else:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        import gkl_plugins.mmrazor
        from gkl_plugins.mmrazor import restore_torch_names_for_mmrazor
        again = restore_torch_names_for_mmrazor()
        from mmrazor.models import ConfigurableDistiller, SingleTeacherDistill  # noqa
        from mmrazor.registry import MODELS
    result['warnings'] = [str(w.message) for w in caught
                          if 'mmrazor 1.0.0' in str(w.message)]
    result['again'] = again
    result['loss'] = MODELS.get('GKLDivergence').__name__
    result['distiller'] = MODELS.get('SingleTeacherDistill').__name__
print('RESULT' + json.dumps(result))
'''


def _probe(mode):
    out = subprocess.run([sys.executable, '-c', f'MODE = {mode!r}\n' + _PROBE],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    line = [x for x in out.stdout.splitlines() if x.startswith('RESULT')][-1]
    return json.loads(line[len('RESULT'):])


def test_import_fails_without_and_works_with_the_fix():
    require('mmrazor')
    plain = _probe('plain')
    fixed = _probe('fixed')

    if plain['missing']:
        # the misleading message mmrazor gives when its torch names are gone
        assert plain['error'] is not None and 'torch>=1.13' in plain['error']
        assert len(fixed['warnings']) == 1
        message = fixed['warnings'][0]
        for name in ('reverse2', 'reverse3', 'reverse_sequential_wrapper2',
                     'backend_config.utils', '_set_overwrite_output_observer'):
            assert name in message
    else:
        assert plain['error'] is None and fixed['warnings'] == []
    assert fixed['again'] == []
    assert fixed['loss'] == 'GKLDivergence'
    assert fixed['distiller'] == 'SingleTeacherDistill'


def test_restored_fusers_swap_their_arguments():
    require('gkl_plugins.mmrazor')
    import torch.ao.quantization.fuser_method_mappings as fusers

    first, second = nn.Linear(2, 3), nn.ReLU()
    fused = fusers.reverse_sequential_wrapper2(nn.Sequential)(False, second, first)
    assert isinstance(fused, nn.Sequential) and fused[0] is first and fused[1] is second

    def record(is_qat, *modules):
        return (is_qat, ) + modules
    assert fusers.reverse2(record)(True, 'b', 'a') == (True, 'a', 'b')
    assert fusers.reverse3(record)(False, 'c', ('b', 'a')) == (False, 'a', 'b', 'c')
