"""ClassPrior under torch.distributed: two gloo processes end every epoch with one prior."""
import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from gkl_plugins.core import ClassPrior

CLASSES = 5
TEMPERATURE = 2.0
WORLD_SIZE = 2


def _epochs():
    """Per epoch, per rank: (labels, teacher logits).

    Epoch 1: only rank 0 sees class 0, only rank 1 sees class 3, nobody sees class 4.
    Epoch 2: classes 3 and 4 appear on neither rank.
    """
    generator = torch.Generator().manual_seed(0)
    layout = [
        [[0, 0, 1, 2, 1], [3, 1, 2, 3, 3, 2]],
        [[0, 1, 1], [2, 0, 2, 1]],
    ]
    return [[(torch.tensor(labels), 3 * torch.randn(len(labels), CLASSES, generator=generator))
             for labels in ranks] for ranks in layout]


def _worker(rank, store_path, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{store_path}', rank=rank,
                            world_size=WORLD_SIZE)
    try:
        prior = ClassPrior(CLASSES, temperature=TEMPERATURE)
        history = []
        for epoch in _epochs():
            labels, logits = epoch[rank]
            # Two batches, so the running sums are exercised too.
            prior.update(labels[:2], logits[:2])
            prior.update(labels[2:], logits[2:])
            seen = prior.close_epoch()
            history.append((prior.prior.clone(), seen.clone()))
        torch.save(history, os.path.join(out_dir, f'rank{rank}.pt'))
    finally:
        dist.destroy_process_group()


def _class_means(pairs):
    """Per class, the mean of softmax(t / T2) over all its samples (None if it has none)."""
    rows = []
    for y in range(CLASSES):
        members = [torch.softmax(logits[i].double() / TEMPERATURE, dim=0)
                   for labels, logits in pairs for i in range(len(labels)) if labels[i] == y]
        rows.append(torch.stack(members).mean(dim=0) if members else None)
    return rows


def test_two_processes_end_with_the_single_process_prior(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / 'store'), str(tmp_path)), nprocs=WORLD_SIZE,
             join=True)
    histories = [torch.load(tmp_path / f'rank{rank}.pt') for rank in range(WORLD_SIZE)]
    epochs = _epochs()

    single = ClassPrior(CLASSES, temperature=TEMPERATURE)
    previous = torch.full((CLASSES, CLASSES), 1.0 / CLASSES, dtype=torch.float64)
    for index, epoch in enumerate(epochs):
        for labels, logits in epoch:
            single.update(labels, logits)
        single.close_epoch()
        (prior_0, seen_0), (prior_1, seen_1) = histories[0][index], histories[1][index]

        assert torch.equal(prior_0, prior_1), 'the ranks disagree on the prior'
        torch.testing.assert_close(prior_0, single.prior, rtol=1e-6, atol=1e-8)
        means = _class_means(epoch)
        expected_seen = [row is not None for row in means]
        assert seen_0.tolist() == expected_seen and seen_1.tolist() == expected_seen
        for y, row in enumerate(means):
            # A class missing on every rank keeps the row it had.
            expected = previous[y] if row is None else row
            torch.testing.assert_close(prior_0[y].double(), expected, rtol=1e-6, atol=1e-7)
        previous = prior_0.double()

    assert histories[0][0][1].tolist() == [True, True, True, True, False]
    assert histories[0][1][1].tolist() == [True, True, True, False, False]
    assert torch.equal(histories[0][1][0][4], torch.full((CLASSES,), 1.0 / CLASSES))
