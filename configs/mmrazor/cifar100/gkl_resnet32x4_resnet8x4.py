# GKL on CIFAR-100, resnet32x4 -> resnet8x4, with the reference hyperparameters: CE weight 1,
# alpha (CE part) 1, beta (wMSE part) 16, gamma 0.05, T = T2 = 4, class-wise prior, linear
# warm-up over 20 epochs; the data, schedule (SGD lr 0.05, 240 epochs) and models are those
# of the KD baseline next to this file.
_base_ = ['./kd_resnet32x4_resnet8x4.py']

model = dict(
    architecture=dict(head=dict(loss=dict(loss_weight=1.0))),
    distiller=dict(
        student_recorders=dict(
            gt_labels=dict(type='ModuleInputs', source='head.loss_module')),
        distill_losses=dict(
            _delete_=True,
            loss_gkl=dict(type='GKLDivergence', num_classes=100, alpha=1.0, beta=16.0,
                          gamma=0.05, tau=4.0, weight_tau=4.0, warmup=20)),
        loss_forward_mappings=dict(
            _delete_=True,
            loss_gkl=dict(
                preds_S=dict(from_student=True, recorder='fc'),
                preds_T=dict(from_student=False, recorder='fc'),
                gt_labels=dict(from_student=True, recorder='gt_labels', data_idx=1)))))

custom_hooks = [dict(type='GKLPriorHook')]
