# GKL adversarial training of WRN-34-10 on CIFAR-10, L-inf eps 8/255: the reference setting
# (GKL_MATH.md section 5: alpha 4, beta 20, gamma 1, T 1, class prior at T2 = 4; the
# "high" training-attack budget with the radius ramped over the epochs; AWP gamma 0.005
# from epoch 10; weight averaging with decay 0.9996 from 3/4 of training; SGD lr 0.2,
# momentum 0.9, weight decay 5e-4, batch 128, 200 epochs, cosine schedule; seed 0).
# Published: 85.31% clean, 57.13% under AutoAttack.
#
# mmpretrain's CIFAR10 dataset reads (or downloads) data/cifar10. The reference trains on
# [0, 1] images without normalisation: the preprocessor divides by 255, and the attacks
# work in pixel units of the 0..255 images whatever the normalisation.
default_scope = 'mmpretrain'
custom_imports = dict(imports=['gkl_plugins.mmpretrain', 'gkl_plugins.mmengine'],
                      allow_failed_imports=False)

num_classes = 10
eps = 8 / 255
max_epochs = 200

data_preprocessor = dict(type='ClsDataPreprocessor', num_classes=num_classes,
                         mean=[0.0, 0.0, 0.0], std=[255.0, 255.0, 255.0], to_rgb=False)
model = dict(
    type='AdversarialClassifier',
    classifier=dict(
        type='ImageClassifier',
        backbone=dict(type='WideResNetCIFAR', depth=34, widen_factor=10),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=num_classes, in_channels=640,
                  loss=dict(type='CrossEntropyLoss', loss_weight=1.0))),
    robust_loss=dict(type='gkl', alpha=4.0, beta=20.0, gamma=1.0, temperature=1.0,
                     weight_temperature=4.0),
    train_attack=dict(eps=eps, budget='high', ramp=True),
    awp=dict(gamma=0.005, begin_epoch=10),
    pixel_range=(0.0, 255.0),
    eval_attacks=dict(
        pgd20=dict(type='PGD', eps=eps, alpha=2 / 255, steps=20, random_start=True,
                   num_samples=None),
        autoattack=dict(type='AutoAttack', norm='Linf', eps=eps, version='standard',
                        num_samples=None)),
)

dataset_type = 'CIFAR10'
data_root = 'data/cifar10'
train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=128,
    num_workers=4,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=128,
    num_workers=4,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='test',
                 pipeline=test_pipeline),
)
val_evaluator = dict(type='RobustAccuracy')
test_dataloader = val_dataloader
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.2, momentum=0.9, weight_decay=5e-4))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, eta_min=0.0,
                        convert_to_iter_based=True)]
# AutoAttack on the whole test set takes hours: validate rarely, or lower
# model.eval_attacks.autoattack.num_samples.
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=20)
val_cfg = dict()
test_cfg = dict()

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)
# Weight averaging of every parameter and buffer, decay 0.9996 (momentum 4e-4), starting
# with the 150th epoch; validation and checkpoints then use the averaged weights.
custom_hooks = [
    dict(type='GKLPriorHook'),
    dict(type='EMAHook', ema_type='ExponentialMovingAverage', momentum=4e-4,
         begin_epoch=max_epochs * 3 // 4, update_buffers=True),
]

env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork'),
               dist_cfg=dict(backend='nccl'))
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)
log_processor = dict(window_size=10)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
