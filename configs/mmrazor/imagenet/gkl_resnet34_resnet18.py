# GKL on ImageNet, ResNet-34 -> ResNet-18, with the reference hyperparameters: alpha (CE
# part) 1, beta (wMSE part) 0.5, gamma 0.6, T = T2 = 1, class-wise prior, linear warm-up
# over 5 epochs, CE weight 1; batch 512, lr 0.2, 100 epochs as in the KD baseline next to
# this file.
_base_ = ['./kd_resnet34_resnet18.py']

model = dict(
    architecture=dict(head=dict(loss=dict(loss_weight=1.0))),
    distiller=dict(
        student_recorders=dict(
            gt_labels=dict(type='ModuleInputs', source='head.loss_module')),
        distill_losses=dict(
            _delete_=True,
            loss_gkl=dict(type='GKLDivergence', num_classes=1000, alpha=1.0, beta=0.5,
                          gamma=0.6, tau=1.0, weight_tau=1.0, warmup=5)),
        loss_forward_mappings=dict(
            _delete_=True,
            loss_gkl=dict(
                preds_S=dict(from_student=True, recorder='fc'),
                preds_T=dict(from_student=False, recorder='fc'),
                gt_labels=dict(from_student=True, recorder='gt_labels', data_idx=1)))))

custom_hooks = [dict(type='GKLPriorHook')]
