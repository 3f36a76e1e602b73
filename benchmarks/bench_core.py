"""Speed and memory of ``gkl_loss`` against a pairwise GKL and plain KD, forward + backward.

Run from the repository root::

    .venv/bin/python benchmarks/bench_core.py                  # 1 and 2 threads
    .venv/bin/python benchmarks/bench_core.py --threads 1 --repeats 31 --output out.md

What is compared, on random float32 logits with a frozen teacher (knowledge distillation):

* ``gkl_loss``: the core module with the CIFAR-100 KD settings (beta 16, gamma 0.05,
  T = T2 = 4), the most expensive path (the power ``gamma`` costs an extra exponential).
* pairwise: the same loss written the way the definition reads, with ``(B, C, C)``
  tensors of all class pairs. Skipped where its estimated peak memory exceeds
  ``--pairwise-max-gb`` or half of the memory available, or ``C`` exceeds 1000 (a single
  step would take minutes). The table says so.
* KD: ``F.kl_div(log_softmax(z / T), softmax(t / T), 'batchmean') * T^2``.

Time: the median over ``--repeats`` runs of one forward + backward (more where a run is
fast, about a second's worth per method), after warm-up runs. The methods are interleaved
run by run, so a change in the machine's load hits all of them alike; the load average
before and after is printed, and the ratios are more reliable than the absolute times on a
shared machine.

Peak extra memory: one more run of each method under ``torch.profiler`` with
``profile_memory=True``, which records every allocation and release of tensor memory by
the CPU allocator with its time. The peak of the running total of those records is the
highest amount of tensor memory held at once because of the call, on top of what was held
before it: the forward's temporaries, what autograd saves for backward, the backward's
temporaries and the student's gradient. It counts bytes requested from the allocator, not
the process's resident pages: the C library's own overhead and freed pages it keeps are
not included, and nothing else running in the process disturbs the figure. The
``x B*C`` column divides it by the size of one ``(B, C)`` float32 tensor; a constant there
means memory linear in ``B * C``.
"""
import argparse
import contextlib
import datetime
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gkl_plugins.core import gkl_loss  # noqa: E402

SIZES = [(64, 10), (64, 100), (64, 1000), (64, 10000), (256, 10), (256, 100), (256, 1000),
         (256, 10000), (64, 128000)]
PAIRWISE_MAX_CLASSES = 1000  # beyond this one pairwise step takes minutes
# Live (B, C, C) float32 tensors at the pairwise form's peak (weights, gaps, squares, the
# weighted squares and their gradients), a deliberately generous estimate.
PAIRWISE_TENSORS_AT_PEAK = 7
SETTINGS = dict(beta=16.0, gamma=0.05, temperature=4.0, weight_temperature=4.0)


def gkl(student, teacher):
    return gkl_loss(student, teacher, **SETTINGS)


def pairwise(student, teacher):
    """GKL as defined, through all pairs of classes: O(B * C^2) time and memory."""
    temperature, gamma, beta = SETTINGS['temperature'], SETTINGS['gamma'], SETTINGS['beta']
    with torch.no_grad():
        u = torch.softmax(teacher / SETTINGS['weight_temperature'], dim=1) ** gamma
        w = u[:, :, None] * u[:, None, :]
        target = torch.softmax(teacher / temperature, dim=1)
    gaps = (teacher[:, :, None] - teacher[:, None, :]) - (student[:, :, None] - student[:, None, :])
    mse = 0.25 * (w * gaps.square()).sum() / w.sum()
    ce = -(target * torch.log_softmax(student / temperature, dim=1)).sum(dim=1).mean()
    return beta * mse + ce


def kd(student, teacher):
    temperature = SETTINGS['temperature']
    return F.kl_div(F.log_softmax(student / temperature, dim=1),
                    F.softmax(teacher / temperature, dim=1),
                    reduction='batchmean') * temperature ** 2


METHODS = {'KD': kd, 'GKL': gkl, 'pairwise': pairwise}


def step(fn, student, teacher) -> float:
    """Seconds for one forward + backward."""
    start = time.perf_counter()
    fn(student, teacher).backward()
    elapsed = time.perf_counter() - start
    student.grad = None
    return elapsed


@contextlib.contextmanager
def _quiet_native_stderr():
    """Hide what the profiler's C++ library writes to stderr at every start and stop."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def peak_extra_bytes(fn, student, teacher) -> int:
    with _quiet_native_stderr(), \
            profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn(student, teacher).backward()
    student.grad = None
    records = [(event.start_ns(), index, event.nbytes())
               for index, event in enumerate(prof.profiler.kineto_results.events())
               if event.name() == '[memory]']
    held = peak = 0
    for _, _, nbytes in sorted(records):
        held += nbytes
        peak = max(peak, held)
    return peak


def available_bytes() -> int:
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def pairwise_skip_reason(batch, classes, max_gb):
    if classes > PAIRWISE_MAX_CLASSES:
        return f'skipped: C > {PAIRWISE_MAX_CLASSES}, minutes per step'
    estimate = PAIRWISE_TENSORS_AT_PEAK * batch * classes * classes * 4
    limit = min(max_gb * 2 ** 30, available_bytes() / 2 or max_gb * 2 ** 30)
    if estimate > limit:
        return f'skipped: needs ~{estimate / 2 ** 30:.0f} GB'
    return None


def machine_facts() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            names = [line.split(':', 1)[1].strip() for line in f if line.startswith('model name')]
        model = names[0] if names else model
    except OSError:
        pass
    memory = ''
    try:
        with open('/proc/meminfo') as f:
            memory = f', {int(f.readline().split()[1]) / 2 ** 20:.0f} GB RAM'
    except (OSError, ValueError, IndexError):
        pass
    return (f'{model}, {os.cpu_count()} logical cores{memory}; Python '
            f'{platform.python_version()}, torch {torch.__version__}, {platform.system()}')


def run(threads, repeats, pairwise_repeats, max_gb, sizes, log):
    torch.set_num_threads(threads)
    lines = ['| B | C | KD ms | GKL ms | pairwise ms | GKL / KD | pairwise / GKL '
             '| KD MB | GKL MB | pairwise MB | GKL x B*C |',
             '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    for line in lines:
        log(line)
    for batch, classes in sizes:
        generator = torch.Generator().manual_seed(batch * 100003 + classes)
        student = torch.randn(batch, classes, generator=generator).mul_(3).requires_grad_()
        teacher = torch.randn(batch, classes, generator=generator).mul_(3)
        names = ['KD', 'GKL']
        skip = pairwise_skip_reason(batch, classes, max_gb)
        if skip is None:
            names.append('pairwise')

        times = {name: [] for name in names}
        warmup = {name: max(step(METHODS[name], student, teacher)
                            for _ in range(1 if name == 'pairwise' else 3)) for name in names}
        # Fast sizes get more runs, up to about a second per method: their medians would
        # otherwise follow the bursts of other jobs on a shared machine.
        rounds = max(repeats, min(2000, int(1.0 / max(warmup['KD'], warmup['GKL']))))
        for index in range(rounds):
            for name in names:
                if name == 'pairwise' and index >= pairwise_repeats:
                    continue
                times[name].append(step(METHODS[name], student, teacher))
        median = {name: statistics.median(values) * 1e3 for name, values in times.items()}
        memory = {name: peak_extra_bytes(METHODS[name], student, teacher) / 2 ** 20
                  for name in names}

        def cell(name, fmt):
            return fmt.format(median[name]) if name in median else skip

        row = [str(batch), str(classes), cell('KD', '{:.3f}'), cell('GKL', '{:.3f}'),
               cell('pairwise', '{:.1f}'), f'{median["GKL"] / median["KD"]:.2f}',
               (f'{median["pairwise"] / median["GKL"]:.0f}' if 'pairwise' in median else '-'),
               f'{memory["KD"]:.2f}', f'{memory["GKL"]:.2f}',
               (f'{memory["pairwise"]:.1f}' if 'pairwise' in memory else '-'),
               f'{memory["GKL"] * 2 ** 20 / (batch * classes * 4):.1f}']
        lines.append('| ' + ' | '.join(row) + ' |')
        log(lines[-1])
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--threads', type=int, nargs='+', default=[1, 2],
                        help='torch thread counts to run, one table each (default: 1 2)')
    parser.add_argument('--repeats', type=int, default=21,
                        help='least number of timed runs per method and size (fast sizes get '
                             'more); the median is reported')
    parser.add_argument('--pairwise-repeats', type=int, default=3,
                        help='timed runs of the slow pairwise form (at most --repeats)')
    parser.add_argument('--pairwise-max-gb', type=float, default=8.0,
                        help='skip the pairwise form above this estimated peak memory')
    parser.add_argument('--quick', action='store_true',
                        help='only B = 64 with C up to 1000, for a smoke run')
    parser.add_argument('--output', help='also write the markdown to this file')
    args = parser.parse_args(argv)
    sizes = [(b, c) for b, c in SIZES if b == 64 and c <= 1000] if args.quick else SIZES

    out = []

    def log(line=''):
        print(line, flush=True)
        out.append(line)

    log('Command: `' + ' '.join([os.path.relpath(sys.executable), *sys.argv]) + '`  ')
    log(f'Date: {datetime.datetime.now().astimezone().isoformat(timespec="minutes")}  ')
    log(f'Machine: {machine_facts()}  ')
    log(f'GKL settings: {SETTINGS}; float32, frozen teacher; median of at least '
        f'{args.repeats} runs (up to about 1 s worth for fast sizes; '
        f'{args.pairwise_repeats} for pairwise) of forward + backward.')
    for threads in args.threads:
        load = os.getloadavg()
        log('')
        log(f'### {threads} thread{"s" if threads > 1 else ""} '
            f'(load average before: {load[0]:.2f})')
        log('')
        run(threads, args.repeats, min(args.pairwise_repeats, args.repeats),
            args.pairwise_max_gb, sizes, log)
        log('')
        log(f'Load average after: {os.getloadavg()[0]:.2f}')
    if args.output:
        with open(args.output, 'w') as f:
            f.write('\n'.join(out) + '\n')


if __name__ == '__main__':
    main()
