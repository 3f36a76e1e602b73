"""``gkl-d2-train`` end to end with the shipped configs: teacher, then GKL distillation."""
import json
import os

import torch

from tests.conftest import require

from .conftest import CONFIG_DIR

# Short runs on CPU; the models are the shipped ones (R-50-FPN teacher, R-18-FPN student).
SHORT = ['SOLVER.MAX_ITER', '2', 'SOLVER.IMS_PER_BATCH', '2', 'SOLVER.WARMUP_ITERS', '0',
         'DATALOADER.NUM_WORKERS', '0', 'SEED', '0']


def _metrics(output_dir):
    with open(os.path.join(output_dir, 'metrics.json')) as f:
        return [json.loads(line) for line in f]


def test_gkl_d2_train_teacher_then_distillation(tmp_path, monkeypatch):
    require('detectron2')
    from gkl_plugins.detectron2.data import DEFAULT_DATASETS
    from gkl_plugins.detectron2.train_net import main

    torch.set_num_threads(1)
    monkeypatch.setenv('GKL_CACHE_DIR', str(tmp_path / 'cache'))
    teacher_dir, student_dir = tmp_path / 'teacher', tmp_path / 'student'
    main(['--config-file', os.path.join(CONFIG_DIR, 'faster_rcnn_R50_FPN_teacher.yaml'),
          *SHORT, 'DATASETS.TEST', '()', 'OUTPUT_DIR', str(teacher_dir)])
    teacher_weights = teacher_dir / 'model_final.pth'
    assert teacher_weights.exists()

    # The teacher config path in the distillation config is relative to the config file.
    main(['--config-file', os.path.join(CONFIG_DIR, 'faster_rcnn_R18_FPN_gkl_distill.yaml'),
          *SHORT, 'MODEL.GKL.TEACHER.WEIGHTS', str(teacher_weights),
          'MODEL.GKL.PRIOR_INTERVAL', '1', 'MODEL.GKL.WARMUP_ITERS', '2',
          'OUTPUT_DIR', str(student_dir)])

    rows = _metrics(student_dir)
    losses = [r for r in rows if 'loss_gkl_ce' in r]
    assert [r['iteration'] for r in losses] == [1]  # the writer's last window
    assert losses[0]['loss_gkl_ce'] > 0 and losses[0]['gkl/warmup'] == 1.0
    assert 0 < losses[0]['gkl/prior_rows_renewed'] <= 11
    assert 'GKL class prior renewed after iteration 1' in (student_dir / 'log.txt').read_text()
    # Evaluated on the made-up validation set by COCOEvaluator after training.
    evaluation = [r for r in rows if 'bbox/AP' in r]
    assert len(evaluation) == 1
    num_val = DEFAULT_DATASETS['fashion_mnist_det_val']['num_images']
    with open(student_dir / 'inference' / 'coco_instances_results.json') as f:
        assert {d['image_id'] for d in json.load(f)} <= set(range(num_val))

    # The student checkpoint holds no teacher; the prior is there and was renewed twice.
    state = torch.load(student_dir / 'model_final.pth', map_location='cpu',
                       weights_only=False)['model']
    assert not [k for k in state if k.startswith('teacher.')]
    assert int(state['gkl_loss.prior.num_epochs']) == 2
    row_sums = torch.as_tensor(state['gkl_loss.prior.prior']).sum(dim=1)
    assert torch.allclose(row_sums, torch.ones_like(row_sums), atol=1e-5)

    # It loads into the plain student architecture: every student entry is there.
    from detectron2.config import get_cfg
    from detectron2.modeling import build_model
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(CONFIG_DIR, 'faster_rcnn_R18_FPN_student.yaml'))
    incompatible = build_model(cfg).load_state_dict(
        {k: torch.as_tensor(v) for k, v in state.items()}, strict=False)
    assert incompatible.missing_keys == []
    assert sorted(incompatible.unexpected_keys) == sorted(
        k for k in state if k.startswith('gkl_loss.'))


def test_load_gkl_config_finds_the_teacher_next_to_the_student(tmp_path, monkeypatch):
    require('detectron2')
    from gkl_plugins.detectron2 import get_teacher_cfg, load_gkl_config

    monkeypatch.chdir(tmp_path)  # nowhere near the configs
    student = os.path.join(CONFIG_DIR, 'faster_rcnn_R18_FPN_gkl_distill.yaml')
    cfg = load_gkl_config(student, ['MODEL.GKL.BETA', '3.0'])
    assert cfg.MODEL.GKL.TEACHER.CONFIG_FILE == os.path.abspath(
        os.path.join(CONFIG_DIR, 'faster_rcnn_R50_FPN_teacher.yaml'))
    assert cfg.MODEL.GKL.BETA == 3.0
    assert get_teacher_cfg(cfg).MODEL.RESNETS.DEPTH == 50
