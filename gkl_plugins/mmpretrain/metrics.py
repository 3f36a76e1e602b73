"""Clean and robust accuracy as an mmengine metric."""
from collections import defaultdict
from typing import Dict, List, Optional, Sequence

from mmengine.evaluator import BaseMetric
from mmpretrain.registry import METRICS


@METRICS.register_module()
class RobustAccuracy(BaseMetric):
    """Top-1 accuracy on natural images and under each attack of an
    :class:`~gkl_plugins.mmpretrain.AdversarialClassifier`.

    Reads ``gt_label``, ``pred_label`` and the ``adv_pred_label`` dict (attack name -> label)
    of each predicted sample. Reports percentages, e.g. ``robust/clean``, ``robust/pgd20``
    and ``robust/autoattack``. An attack that ran on a subset (its ``num_samples``) is scored
    on that subset, and ``robust/clean_<name>`` gives the clean accuracy on the same samples
    so the two can be compared.

    Args:
        collect_device (str): Device used to gather results across processes.
            Defaults to ``'cpu'``.
        prefix (str, optional): Metric name prefix. Defaults to ``'robust'``.
    """
    default_prefix = 'robust'

    def __init__(self, collect_device: str = 'cpu', prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            label = int(sample['gt_label'].reshape(-1)[0])
            correct = int(int(sample['pred_label'].reshape(-1)[0]) == label)
            attacked = {name: int(int(pred.reshape(-1)[0]) == label)
                        for name, pred in sample.get('adv_pred_label', {}).items()}
            self.results.append(dict(clean=correct, attacked=attacked))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        metrics = dict(clean=100.0 * sum(r['clean'] for r in results) / max(len(results), 1))
        robust, clean_subset = defaultdict(list), defaultdict(list)
        for result in results:
            for name, correct in result['attacked'].items():
                robust[name].append(correct)
                clean_subset[name].append(result['clean'])
        for name in sorted(robust):
            metrics[name] = 100.0 * sum(robust[name]) / len(robust[name])
            metrics[f'clean_{name}'] = 100.0 * sum(clean_subset[name]) / len(clean_subset[name])
        return metrics
