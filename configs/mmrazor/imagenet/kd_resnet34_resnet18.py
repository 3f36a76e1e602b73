# Classic KD baseline on ImageNet, ResNet-34 -> ResNet-18: batch 512 (8 x 64), SGD (lr 0.2,
# momentum 0.9, weight decay 1e-4), 100 epochs with the learning rate divided by 10 at
# epochs 30, 60 and 90; CE weight 0.5, KL weight 0.5 at temperature 1. The teacher is
# mmpretrain's torchvision-equivalent ResNet-34.
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['gkl_plugins.mmrazor'], allow_failed_imports=False)

teacher_ckpt = ('https://download.openmmlab.com/mmclassification/v0/resnet/'
                'resnet34_8xb32_in1k_20210831-f257d4e6.pth')

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.2, momentum=0.9, weight_decay=1e-4))
param_scheduler = dict(
    type='MultiStepLR', by_epoch=True, milestones=[30, 60, 90], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
val_cfg = dict(type='mmrazor.SingleTeacherDistillValLoop')
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=512)


def _resnet(depth, ce_weight=1.0):
    return dict(
        _scope_='mmpretrain',
        type='ImageClassifier',
        backbone=dict(type='ResNet', depth=depth, num_stages=4, out_indices=(3, ),
                      style='pytorch'),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=1000, in_channels=512,
                  loss=dict(type='CrossEntropyLoss', loss_weight=ce_weight), topk=(1, 5)))


model = dict(
    _scope_='mmrazor',
    type='SingleTeacherDistill',
    data_preprocessor=dict(
        type='mmpretrain.ClsDataPreprocessor',
        num_classes=1000,
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    architecture=_resnet(18, ce_weight=0.5),
    teacher=_resnet(34),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(fc=dict(type='ModuleOutputs', source='head.fc')),
        teacher_recorders=dict(fc=dict(type='ModuleOutputs', source='head.fc')),
        distill_losses=dict(loss_kl=dict(type='KLDivergence', tau=1, loss_weight=0.5)),
        loss_forward_mappings=dict(
            loss_kl=dict(
                preds_S=dict(from_student=True, recorder='fc'),
                preds_T=dict(from_student=False, recorder='fc')))))
