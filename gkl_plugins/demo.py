"""The main job: GKL against its classic baselines on real data, from one command.

Runs, through the package's own train commands and the shipped configs:

1. a Fashion-MNIST teacher (mmpretrain);
2. a student distilled with classic KD and with GKL (mmrazor), same schedule and seed;
3. adversarial training with TRADES and with GKL (mmpretrain), evaluated on clean, PGD-20 and
   AutoAttack accuracy;
4. a short Detectron2 distillation on a detection set made of real Fashion-MNIST items
   (when Detectron2 is importable).

Each step trains in its own folder under ``--out`` and records ``result.json`` when it
finishes; a rerun with the same settings reuses finished steps unless ``--force`` is given.
At the end the results table is printed and written (``results.md``, ``results.json``) with
figures (``*.png``) next to it.

Usage::

    python -m gkl_plugins.demo                      # the default run, about 15 min on 2 cores
    python -m gkl_plugins.demo --preset long        # more data and epochs
    python -m gkl_plugins.demo --steps at_trades,at_gkl --force
"""
import argparse
import datetime
import glob
import hashlib
import json
import os
import os.path as osp
import platform
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple

from .data import DataNotFoundError, load_fashion_mnist

REPO_CONFIGS = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs')

# Sizes of each preset. ``quick`` is what the test suite runs; ``default`` is the README's
# front door (about 15 minutes on 2 cores); ``long`` trains longer on all the data.
PRESETS: Dict[str, Dict[str, Optional[int]]] = {
    'quick': dict(train_samples=200, val_samples=200, teacher_epochs=1, student_epochs=1,
                  at_epochs=1, pgd_samples=32, autoattack_samples=4, det_train_images=8,
                  det_test_images=4, det_teacher_iters=2, det_student_iters=2),
    'default': dict(train_samples=10000, val_samples=2000, teacher_epochs=4,
                    student_epochs=4, at_epochs=3, pgd_samples=400, autoattack_samples=40,
                    det_train_images=400, det_test_images=50, det_teacher_iters=80,
                    det_student_iters=50),
    'long': dict(train_samples=None, val_samples=None, teacher_epochs=20, student_epochs=20,
                 at_epochs=20, pgd_samples=None, autoattack_samples=1000,
                 det_train_images=2000, det_test_images=200, det_teacher_iters=2000,
                 det_student_iters=2000),
}

STEP_ORDER = ('teacher', 'kd', 'gkl', 'at_trades', 'at_gkl', 'det_teacher', 'det_student',
              'det_gkl')


def _log(msg: str) -> None:
    print(f'[demo {datetime.datetime.now():%H:%M:%S}] {msg}', flush=True)


def _latest(pattern: str) -> Optional[str]:
    matches = sorted(glob.glob(pattern), key=osp.getmtime)
    return matches[-1] if matches else None


def read_mmengine_scalars(work_dir: str) -> List[dict]:
    """Records of mmengine's LocalVisBackend (``<work_dir>/<time>/vis_data/scalars.json``)."""
    path = _latest(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    if path is None:
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def read_detectron2_metrics(output_dir: str) -> List[dict]:
    """Records of detectron2's JSONWriter (``metrics.json``)."""
    path = osp.join(output_dir, 'metrics.json')
    if not osp.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def mmengine_last_checkpoint(work_dir: str) -> Optional[str]:
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.exists(path):
        return None
    with open(path) as f:
        ckpt = f.read().strip()
    return ckpt if osp.exists(ckpt) else None


class Step:
    """One training run of the demo: a command, its folder, and how to read its results."""

    def __init__(self, name: str, title: str, kind: str, config: str, options: List[str],
                 needs: Optional[str] = None):
        self.name = name
        self.title = title
        self.kind = kind  # 'mmengine' or 'detectron2'
        self.config = osp.join(REPO_CONFIGS, config)
        self.options = options
        self.needs = needs

    def command(self, work_dir: str, needed: Optional[dict]) -> List[str]:
        options = list(self.options)
        if self.kind == 'mmengine':
            if needed is not None:
                options.append(f'model.teacher_ckpt={needed["checkpoint"]}')
            return [sys.executable, '-m', 'gkl_plugins.mmengine.train', self.config,
                    '--work-dir', work_dir, '--cfg-options', *options]
        if needed is not None:
            options += ['MODEL.GKL.TEACHER.WEIGHTS', needed['checkpoint']]
        return [sys.executable, '-m', 'gkl_plugins.detectron2.train_net', '--config-file',
                self.config, *options, 'OUTPUT_DIR', work_dir]

    def fingerprint(self, needed: Optional[dict]) -> str:
        with open(self.config, 'rb') as f:
            text = f.read()
        key = json.dumps([self.options, needed and needed.get('fingerprint')]).encode()
        return hashlib.sha1(text + key).hexdigest()[:16]


def build_steps(preset: Dict[str, Optional[int]]) -> Dict[str, Step]:
    p = preset

    def size(key):
        return 'None' if p[key] is None else str(p[key])

    data = [f'train_dataloader.dataset.num_samples={size("train_samples")}',
            f'val_dataloader.dataset.num_samples={size("val_samples")}']
    teacher = [f'train_cfg.max_epochs={p["teacher_epochs"]}', *data]
    student = [f'train_cfg.max_epochs={p["student_epochs"]}', *data]
    # Robust accuracy is costly on a CPU: evaluate once, after the last epoch.
    adversarial = [f'train_cfg.max_epochs={p["at_epochs"]}',
                   f'train_cfg.val_interval={p["at_epochs"]}', *data,
                   f'model.eval_attacks.pgd20.num_samples={size("pgd_samples")}',
                   f'model.eval_attacks.autoattack.num_samples={size("autoattack_samples")}']
    # A fixed seed (detectron2's default draws one), so both students start alike.
    det_data = ['DATASETS.TRAIN', f'("fashion_mnist_det_train_{p["det_train_images"]}",)',
                'DATASETS.TEST', f'("fashion_mnist_det_val_{p["det_test_images"]}",)',
                'SEED', '0']

    def det_iters(n):
        # The learning-rate warm-up and decay steps must lie inside the run.
        decay = min(n - 1, max(1, (3 * n) // 4))
        return ['SOLVER.MAX_ITER', str(n), 'SOLVER.WARMUP_ITERS', str(max(1, n // 5)),
                'SOLVER.STEPS', f'({decay},)' if decay >= 1 else '()',
                'SOLVER.CHECKPOINT_PERIOD',
                str(n), 'MODEL.GKL.PRIOR_INTERVAL', str(max(1, n // 4)),
                'MODEL.GKL.WARMUP_ITERS', str(max(1, n // 4))]

    steps = [
        Step('teacher', 'Teacher (ResNet-18/3 stages)', 'mmengine',
             'mmpretrain/fashion_mnist/teacher.py', teacher),
        Step('kd', 'Student, classic KD', 'mmengine', 'mmrazor/fashion_mnist/kd.py', student,
             needs='teacher'),
        Step('gkl', 'Student, GKL', 'mmengine', 'mmrazor/fashion_mnist/gkl.py', student,
             needs='teacher'),
        Step('at_trades', 'Adversarial training, TRADES', 'mmengine',
             'mmpretrain/fashion_mnist/at_trades.py', adversarial),
        Step('at_gkl', 'Adversarial training, GKL', 'mmengine',
             'mmpretrain/fashion_mnist/at_gkl.py', adversarial),
        Step('det_teacher', 'Detector teacher (R-50-FPN)', 'detectron2',
             'detectron2/faster_rcnn_R50_FPN_teacher.yaml',
             det_data + det_iters(p['det_teacher_iters'])),
        Step('det_student', 'Detector student (R-18-FPN), no distillation', 'detectron2',
             'detectron2/faster_rcnn_R18_FPN_student.yaml',
             det_data + det_iters(p['det_student_iters'])),
        Step('det_gkl', 'Detector student (R-18-FPN), GKL', 'detectron2',
             'detectron2/faster_rcnn_R18_FPN_gkl_distill.yaml',
             det_data + det_iters(p['det_student_iters']), needs='det_teacher'),
    ]
    return {s.name: s for s in steps}


def _mmengine_result(work_dir: str) -> dict:
    records = read_mmengine_scalars(work_dir)
    train = [r for r in records if 'loss' in r]
    val = [r for r in records if 'loss' not in r and 'lr' not in r]
    metrics = {}
    if val:
        last = val[-1]
        for key, value in last.items():
            if key in ('step', 'epoch', 'iter', 'data_time', 'time'):
                continue
            if isinstance(value, (int, float)):
                metrics[key] = float(value)
    return dict(metrics=metrics, checkpoint=mmengine_last_checkpoint(work_dir),
                curve=[{k: r[k] for k in r if k == 'step' or k.startswith('loss')}
                       for r in train],
                val_curve=val)


def _detectron2_result(work_dir: str) -> dict:
    records = read_detectron2_metrics(work_dir)
    train = [r for r in records if 'total_loss' in r]
    evals = [r for r in records if any(k.startswith('bbox/') for k in r)]
    metrics = {}
    if evals:
        metrics = {k: float(v) for k, v in evals[-1].items() if k.startswith('bbox/')}
    ckpt = osp.join(work_dir, 'model_final.pth')
    return dict(metrics=metrics, checkpoint=ckpt if osp.exists(ckpt) else None,
                curve=[{k: r[k] for k in r if k == 'iteration' or 'loss' in k} for r in train],
                val_curve=evals)


def finished_result(step: Step, out_dir: str, results: Dict[str, dict]) -> Optional[dict]:
    """The result of an earlier run of ``step`` with the same settings, if it finished."""
    needed = results.get(step.needs) if step.needs else None
    if step.needs and needed is None:
        return None
    result_file = osp.join(out_dir, step.name, 'result.json')
    if not osp.exists(result_file):
        return None
    with open(result_file) as f:
        previous = json.load(f)
    if previous.get('fingerprint') == step.fingerprint(needed) and \
            previous.get('checkpoint') and osp.exists(previous['checkpoint']):
        return previous
    return None


def run_step(step: Step, out_dir: str, results: Dict[str, dict], force: bool) -> dict:
    work_dir = osp.join(out_dir, step.name)
    needed = results.get(step.needs) if step.needs else None
    if step.needs and (needed is None or not needed.get('checkpoint')):
        raise RuntimeError(f'step {step.name} needs a finished {step.needs} step; run it too')
    fingerprint = step.fingerprint(needed)
    previous = None if force else finished_result(step, out_dir, results)
    if previous is not None:
        _log(f'{step.name}: reusing the finished run in {work_dir} (--force to rerun)')
        return previous
    result_file = osp.join(work_dir, 'result.json')
    os.makedirs(work_dir, exist_ok=True)
    cmd = step.command(work_dir, needed)
    _log(f'{step.name}: {step.title}\n    $ ' + ' '.join(cmd))
    start = time.time()
    env = dict(os.environ)
    env.setdefault('GKL_CACHE_DIR', osp.join(out_dir, 'cache'))
    proc = subprocess.run(cmd, env=env)
    elapsed = time.time() - start
    if proc.returncode != 0:
        raise RuntimeError(f'step {step.name} failed (exit {proc.returncode}); its logs are '
                           f'in {work_dir}')
    result = _mmengine_result(work_dir) if step.kind == 'mmengine' else \
        _detectron2_result(work_dir)
    result.update(name=step.name, title=step.title, seconds=elapsed, fingerprint=fingerprint,
                  command=cmd)
    with open(result_file, 'w') as f:
        json.dump(result, f, indent=1)
    _log(f'{step.name}: done in {elapsed / 60:.1f} min')
    return result


def _fmt(value: Optional[float], digits: int = 2) -> str:
    return '-' if value is None else f'{value:.{digits}f}'


def _metric(result: Optional[dict], *keys: str) -> Optional[float]:
    if not result:
        return None
    for key in keys:
        if key in result['metrics']:
            return result['metrics'][key]
    return None


def _robust_text(result: dict, attack: str) -> str:
    """Robust accuracy, with the clean accuracy of the same (possibly smaller) subset."""
    robust = _metric(result, f'robust/{attack}')
    clean = _metric(result, f'robust/clean_{attack}')
    if robust is None or clean is None:
        return _fmt(robust)
    return f'{robust:.2f} (clean {clean:.2f} on the same subset)'


def results_table(results: Dict[str, dict]) -> str:
    """The markdown tables of the classification and detection steps that ran."""
    lines = ['| step | method | clean acc. (%) | PGD-20 acc. (%) | AutoAttack acc. (%) '
             '| wall time (min) |', '|---|---|---|---|---|---|']
    for name in ('teacher', 'kd', 'gkl', 'at_trades', 'at_gkl'):
        r = results.get(name)
        if r is None:
            continue
        clean = _metric(r, 'robust/clean', 'accuracy/top1')
        robust = [_robust_text(r, attack) for attack in ('pgd20', 'autoattack')]
        lines.append(f'| {name} | {r["title"]} | {_fmt(clean)} | {robust[0]} | {robust[1]} '
                     f'| {r["seconds"] / 60:.1f} |')
    det = [results[n] for n in ('det_teacher', 'det_student', 'det_gkl') if n in results]
    if det:
        lines += ['', '| step | method | box AP | AP50 | wall time (min) |',
                  '|---|---|---|---|---|']
        for r in det:
            lines.append(f'| {r["name"]} | {r["title"]} | {_fmt(_metric(r, "bbox/AP"))} '
                         f'| {_fmt(_metric(r, "bbox/AP50"))} | {r["seconds"] / 60:.1f} |')
    return '\n'.join(lines)


def _versions() -> Dict[str, str]:
    import importlib
    versions = {'python': platform.python_version()}
    for name in ('torch', 'torchvision', 'mmengine', 'mmpretrain', 'mmrazor', 'detectron2',
                 'torchattacks'):
        try:
            versions[name] = importlib.import_module(name).__version__
        except Exception:  # a host that is absent or broken at import is simply not listed
            continue
    return versions


def _load_prior(checkpoint: str):
    import torch

    # The file was written by this demo's own run a moment ago.
    state = torch.load(checkpoint, map_location='cpu', weights_only=False)
    state = state.get('state_dict', state)
    for key, value in state.items():
        if key.endswith('prior.prior'):
            return key, value.float().numpy()
    return None, None


def _plot_validation(ax, runs: List[dict], val_keys: List[Tuple[str, str]]) -> None:
    """Validation metrics: per evaluation when every run was evaluated more than once, else
    the final values side by side."""
    if all(len(r['val_curve']) > 1 for r in runs):
        for r in runs:
            for key, label in val_keys:
                points = [(v.get('step', v.get('iteration')), v[key])
                          for v in r['val_curve'] if key in v]
                if points:
                    ax.plot(*zip(*points), marker='o', label=f'{r["title"]}: {label}')
        ax.set_xlabel('epoch')
        ax.set_title('validation', fontsize=10)
    else:
        width = 0.8 / len(runs)
        for i, r in enumerate(runs):
            final = r['val_curve'][-1] if r['val_curve'] else {}
            values = [final.get(key, float('nan')) for key, _ in val_keys]
            xs = [j + (i - (len(runs) - 1) / 2) * width for j in range(len(val_keys))]
            bars = ax.bar(xs, values, width, label=r['title'])
            ax.bar_label(bars, fmt='%.1f', fontsize=8)
        ax.set_xticks(range(len(val_keys)), [label for _, label in val_keys])
        ax.set_title('validation at the end of training', fontsize=10)
    ax.legend(fontsize=8)


def _remove_stale(path: str) -> None:
    # A figure left by an earlier run would sit next to results it does not show.
    if osp.exists(path):
        os.remove(path)


def plot_results(results: Dict[str, dict], out_dir: str) -> List[str]:
    """Training curves of each pair of runs and heat maps of the learned class priors."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from .data import FASHION_MNIST_CLASSES

    written = []
    # (figure, runs, x key of the training records, loss key, validation metrics to show)
    pairs = [('distillation', ('kd', 'gkl'), 'step', 'loss',
              [('accuracy/top1', 'top-1 (%)')]),
             ('adversarial_training', ('at_trades', 'at_gkl'), 'step', 'loss',
              [('robust/clean', 'clean (%)'), ('robust/pgd20', 'PGD-20 (%)'),
               ('robust/autoattack', 'AutoAttack (%)')]),
             ('detection', ('det_student', 'det_gkl'), 'iteration', 'total_loss',
              [('bbox/AP', 'box AP'), ('bbox/AP50', 'AP50')])]
    for title, names, x_key, y_key, val_keys in pairs:
        runs = [results[n] for n in names if n in results]
        path = osp.join(out_dir, f'curves_{title}.png')
        if not runs:
            _remove_stale(path)
            continue
        fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(11, 4))
        for r in runs:
            xs = [c[x_key] for c in r['curve'] if y_key in c]
            ys = [c[y_key] for c in r['curve'] if y_key in c]
            # a line through one or two records would hardly show
            ax_loss.plot(xs, ys, marker='o' if len(xs) < 3 else None, label=r['title'])
        ax_loss.set_xlabel('iteration')
        ax_loss.set_ylabel(f'training {y_key.replace("_", " ")}')
        # Each method minimises its own objective, so the levels are not comparable.
        ax_loss.set_title('training loss (each method its own objective)', fontsize=10)
        ax_loss.legend(fontsize=8)
        _plot_validation(ax_val, runs, val_keys)
        fig.suptitle(title.replace('_', ' '))
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)

    for name in ('gkl', 'at_gkl'):
        r = results.get(name)
        path = osp.join(out_dir, f'prior_{name}.png')
        prior = _load_prior(r['checkpoint'])[1] if r and r.get('checkpoint') else None
        if prior is None:
            _remove_stale(path)
            continue
        fig, ax = plt.subplots(figsize=(6.5, 5.5))
        image = ax.imshow(prior, cmap='viridis')
        ticks = range(len(FASHION_MNIST_CLASSES))
        ax.set_xticks(ticks, FASHION_MNIST_CLASSES, rotation=60, ha='right', fontsize=8)
        ax.set_yticks(ticks, FASHION_MNIST_CLASSES, fontsize=8)
        ax.set_xlabel('predicted class j')
        ax.set_ylabel('true class y')
        ax.set_title(f'{r["title"]}: learned class prior P[y, j]')
        fig.colorbar(image, ax=ax)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be a positive integer, got {text}')
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m gkl_plugins.demo', description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='outputs/demo', help='output folder')
    parser.add_argument('--preset', choices=sorted(PRESETS), default='default',
                        help='sizes: quick (a smoke run), default (~15 min), long')
    parser.add_argument('--epochs', type=_positive_int, default=None,
                        help='epochs of every classification step (overrides the preset)')
    parser.add_argument('--det-iters', type=_positive_int, default=None,
                        help='iterations of every detection step (overrides the preset)')
    parser.add_argument('--steps', default=','.join(STEP_ORDER),
                        help=f'comma-separated steps to run, from: {",".join(STEP_ORDER)}; '
                        'steps they need are run or reused too')
    parser.add_argument('--force', action='store_true', help='rerun finished steps')
    parser.add_argument('--no-detectron2', action='store_true',
                        help='skip the detection steps')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    preset = dict(PRESETS[args.preset])
    if args.epochs is not None:
        preset.update(teacher_epochs=args.epochs, student_epochs=args.epochs,
                      at_epochs=args.epochs)
    if args.det_iters is not None:
        preset.update(det_teacher_iters=args.det_iters, det_student_iters=args.det_iters)
    steps = build_steps(preset)
    wanted = [s.strip() for s in args.steps.split(',') if s.strip()]
    unknown = [s for s in wanted if s not in steps]
    if unknown:
        print(f'unknown steps {unknown}; choose from {",".join(STEP_ORDER)}', file=sys.stderr)
        return 2
    try:
        load_fashion_mnist('test')
    except DataNotFoundError as exc:
        print(f'gkl_plugins.demo: {exc}', file=sys.stderr)
        return 2

    import importlib.util
    available = set(steps)
    if args.no_detectron2 or importlib.util.find_spec('detectron2') is None:
        available = {name for name in steps if steps[name].kind != 'detectron2'}
        if not args.no_detectron2:
            _log('detectron2 is not installed: skipping the detection steps '
                 '(scripts/install_detectron2.sh installs it)')
        wanted = [s for s in wanted if steps[s].kind != 'detectron2']
    plan = []
    for name in STEP_ORDER:
        if name in wanted or any(steps[w].needs == name for w in wanted):
            plan.append(name)

    out_dir = osp.abspath(args.out)
    os.makedirs(out_dir, exist_ok=True)
    results: Dict[str, dict] = {}
    started = time.time()
    for name in plan:
        # A needed step that is only there as a dependency is reused when it finished.
        force = args.force and name in wanted
        try:
            results[name] = run_step(steps[name], out_dir, results, force)
        except RuntimeError as exc:
            print(f'gkl_plugins.demo: {exc}', file=sys.stderr)
            return 1

    # Steps not run this time still belong in the summary when an earlier run finished them.
    for name in STEP_ORDER:
        if name not in results and name in available:
            previous = finished_result(steps[name], out_dir, results)
            if previous is not None:
                results[name] = previous
    results = {name: results[name] for name in STEP_ORDER if name in results}
    table = results_table(results)
    figures = plot_results(results, out_dir)
    summary = dict(date=datetime.datetime.now().isoformat(timespec='seconds'),
                   machine=dict(platform=platform.platform(), cpus=os.cpu_count()),
                   versions=_versions(), preset=args.preset, settings=preset,
                   total_minutes=(time.time() - started) / 60, results=results,
                   figures=[osp.basename(f) for f in figures])
    with open(osp.join(out_dir, 'results.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    with open(osp.join(out_dir, 'results.md'), 'w') as f:
        f.write(table + '\n')
    print('\n' + table + '\n')
    _log(f'results, raw numbers and figures are in {out_dir} '
         f'(total {summary["total_minutes"]:.1f} min)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
