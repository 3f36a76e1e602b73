# Classic KD on Fashion-MNIST: the teacher of configs/mmpretrain/fashion_mnist/teacher.py
# distilled into a resnet8 with 8/16/32 channels (20k parameters), with the KD weights of
# the usual CIFAR baselines: CE 0.1, KL 0.9 at temperature 4. The schedule and the seed are
# those of gkl.py, so both runs differ only in the distillation loss. Set the teacher with
#     --cfg-options model.teacher_ckpt=work_dirs/teacher/epoch_5.pth
# Data, schedule and runtime come with the teacher's config.
_base_ = ['../../mmpretrain/fashion_mnist/teacher.py']
custom_imports = dict(imports=['gkl_plugins.mmrazor'], allow_failed_imports=False)

student = dict(
    _scope_='mmpretrain',
    type='ImageClassifier',
    backbone=dict(type='CIFARResNet', depth=8, in_channels=1, stem_channels=8,
                  base_channels=8),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=32,
        loss=dict(type='CrossEntropyLoss', loss_weight=0.1)),
)

model = dict(
    _delete_=True,
    _scope_='mmrazor',
    type='SingleTeacherDistill',
    data_preprocessor={{_base_.data_preprocessor}},
    architecture=student,
    teacher={{_base_.model}},
    teacher_ckpt=None,
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(fc=dict(type='ModuleOutputs', source='head.fc')),
        teacher_recorders=dict(fc=dict(type='ModuleOutputs', source='head.fc')),
        distill_losses=dict(loss_kl=dict(type='KLDivergence', tau=4, loss_weight=0.9)),
        loss_forward_mappings=dict(
            loss_kl=dict(
                preds_S=dict(from_student=True, recorder='fc'),
                preds_T=dict(from_student=False, recorder='fc')))))

val_cfg = dict(_delete_=True, type='mmrazor.SingleTeacherDistillValLoop')
