"""Two-process (gloo) distillation: every rank must end the epoch with the same prior, the
class means of the teacher over the whole data set, although each rank sees half of it."""
import os
import socket

import pytest
import torch

from tests.conftest import require
from tests.mmrazor.helpers import OutputRecorder, class_mean_probs, tiny_gkl_config

WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _worker(rank, port, work_dir, out_dir):
    import torch.distributed as dist
    from mmengine.runner import Runner

    import gkl_plugins.mmrazor  # noqa: F401

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD))
    # mmengine's own initialisation selects a CUDA device; on CPU the group is made here
    # and the runner, finding it, uses it.
    dist.init_process_group('gloo', rank=rank, world_size=WORLD)
    cfg = tiny_gkl_config(work_dir, max_epochs=1)
    cfg.launcher = 'pytorch'
    cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None,
                                 broadcast_buffers=False)
    runner = Runner.from_cfg(cfg)
    model = runner.model.module
    teacher = OutputRecorder(model.teacher.head.fc)
    labels = []
    model.architecture.head.loss_module.register_forward_pre_hook(
        lambda module, args: labels.append(args[1].clone()))
    runner.train()
    prior = model.distiller.distill_losses.loss_gkl.gkl.prior
    torch.save(dict(prior=prior.prior.clone(), num_epochs=int(prior.num_epochs),
                    teacher=torch.cat(teacher.outputs), labels=torch.cat(labels)),
               os.path.join(out_dir, f'rank{rank}.pth'))
    dist.destroy_process_group()


def test_two_processes_share_one_prior(tmp_path):
    require('gkl_plugins.mmrazor')
    if not torch.distributed.is_available():
        pytest.fail('torch.distributed is required')
    torch.multiprocessing.spawn(_worker, args=(_free_port(), str(tmp_path / 'work'),
                                               str(tmp_path)),
                                nprocs=WORLD, join=True)
    ranks = [torch.load(str(tmp_path / f'rank{r}.pth')) for r in range(WORLD)]
    weight_tau = tiny_gkl_config(tmp_path / 'cfg').model.distiller.distill_losses.loss_gkl\
        .weight_tau

    torch.testing.assert_close(ranks[0]['prior'], ranks[1]['prior'], rtol=0, atol=0)
    assert all(r['num_epochs'] == 1 for r in ranks)
    # each rank saw a different half of the data
    assert len(ranks[0]['labels']) == len(ranks[1]['labels']) == 20
    teacher = torch.cat([r['teacher'] for r in ranks])
    labels = torch.cat([r['labels'] for r in ranks])
    expected = class_mean_probs(teacher, labels, weight_tau, 10)
    torch.testing.assert_close(ranks[0]['prior'].double(), expected, rtol=1e-5, atol=1e-7)
    own_half = class_mean_probs(ranks[0]['teacher'], ranks[0]['labels'], weight_tau, 10)
    assert float((own_half - expected).abs().max()) > 1e-3
