"""Weights-only loading of mmengine checkpoints on torch >= 2.6."""
import io
import pickle

import pytest
import torch

from tests.conftest import require

mmengine = require('mmengine')
from mmengine.logging import HistoryBuffer  # noqa: E402

import gkl_plugins.mmengine  # noqa: E402,F401  (installs the allow-list)
from tests.mmengine.test_hooks import build_runner  # noqa: E402


class _Attribute:
    """Pickles as ``getattr(owner, name)``, the form pickle gives nested functions."""

    def __init__(self, owner, name):
        self.owner, self.name = owner, name

    def __reduce__(self):
        return getattr, (self.owner, self.name)


def _weights_only_round_trip(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_runner_checkpoint_loads_with_weights_only(tmp_path):
    runner = build_runner(tmp_path / 'run', max_steps=1)
    runner.train()
    losses = runner.model.seen_losses

    checkpoint = torch.load(str(tmp_path / 'run' / 'epoch_1.pth'), weights_only=True)
    history = checkpoint['message_hub']['log_scalars']['train/loss']
    assert isinstance(history, HistoryBuffer)
    values, counts = history.data
    assert list(counts) == [1] * len(losses)
    assert list(values) == pytest.approx(losses, rel=1e-6)
    assert history.mean(window_size=len(losses)) == pytest.approx(sum(losses) / len(losses))


def test_only_history_buffer_statistics_are_reachable_through_getattr():
    mean = _weights_only_round_trip({'f': _Attribute(HistoryBuffer, 'mean')})['f']
    assert mean is HistoryBuffer.mean
    for owner, name in ((HistoryBuffer, '__init__'), (torch.Tensor, 'add_'),
                        (HistoryBuffer, '__class__')):
        with pytest.raises(pickle.UnpicklingError, match='refusing getattr'):
            _weights_only_round_trip({'f': _Attribute(owner, name)})


def test_weights_only_still_refuses_other_globals():
    import fractions
    with pytest.raises(pickle.UnpicklingError, match='Fraction'):
        _weights_only_round_trip({'x': fractions.Fraction(1, 3)})
