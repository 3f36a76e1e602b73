"""RobustAccuracy on hand-made predictions, through mmengine's Evaluator."""
import pytest
import torch

from tests.conftest import require


def sample(label, clean, **attacked):
    return dict(gt_label=torch.tensor([label]), pred_label=torch.tensor([clean]),
                adv_pred_label={name: torch.tensor(pred) for name, pred in attacked.items()})


def test_clean_and_robust_accuracy_per_attacked_subset():
    require('mmpretrain')
    require('gkl_plugins.mmpretrain')
    from mmengine.evaluator import Evaluator
    evaluator = Evaluator(dict(type='mmpretrain.RobustAccuracy'))
    evaluator.process([
        sample(0, 0, pgd=0, aa=0),   # robust
        sample(1, 1, pgd=2, aa=2),   # broken by both
        sample(2, 2, pgd=2),         # robust to PGD, not attacked by AutoAttack
        sample(3, 1, pgd=1),         # wrong already
    ])
    metrics = evaluator.evaluate(4)
    assert metrics == pytest.approx({
        'robust/clean': 75.0,
        'robust/pgd': 50.0, 'robust/clean_pgd': 75.0,
        'robust/aa': 50.0, 'robust/clean_aa': 100.0,
    })


def test_without_attacks_only_clean_accuracy():
    require('mmpretrain')
    require('gkl_plugins.mmpretrain')
    from mmengine.evaluator import Evaluator
    evaluator = Evaluator(dict(type='mmpretrain.RobustAccuracy', prefix='fmnist'))
    evaluator.process([sample(4, 4), sample(5, 4), sample(6, 6)])
    assert evaluator.evaluate(3) == pytest.approx({'fmnist/clean': 200.0 / 3})
