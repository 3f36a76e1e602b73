# The Fashion-MNIST teacher: a three-stage CIFAR-style ResNet (2 basic blocks per stage,
# 16/32/64 channels, 0.17M parameters). Train it with
#     gkl-train configs/mmpretrain/fashion_mnist/teacher.py
# and pass work_dirs/teacher/epoch_5.pth to the distillation configs as model.teacher_ckpt.
_base_ = [
    '../../_base_/datasets/fashion_mnist.py',
    '../../_base_/schedules/fashion_mnist.py',
    '../../_base_/fashion_mnist_runtime.py',
]

# _scope_ lets mmrazor's distillers, which build models in their own scope, reuse this dict.
model = dict(
    _scope_='mmpretrain',
    type='ImageClassifier',
    backbone=dict(
        type='ResNet_CIFAR',
        depth=18,
        num_stages=3,
        strides=(1, 2, 2),
        dilations=(1, 1, 1),
        out_indices=(2, ),
        in_channels=1,
        stem_channels=16,
        base_channels=16,
        # short schedules learn faster when the residual branches start active
        zero_init_residual=False),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=64,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
)
