# GKL distillation on Fashion-MNIST: kd.py with the KL term replaced by the GKL loss. The
# schedule, seed, teacher and student are those of kd.py. The loss settings are the
# reference CIFAR-100 ones, fixed before any run here: CE weight 1, alpha 1, beta 16,
# gamma 0.05, T = T2 = 4, class prior on; its warm-up of 20 of 240 epochs becomes 1 epoch.
# They are not tuned for this data set, student or schedule: a short run here is a check that
# the pipeline works, not a verdict on the loss.
_base_ = ['./kd.py']

model = dict(
    architecture=dict(head=dict(loss=dict(loss_weight=1.0))),
    distiller=dict(
        student_recorders=dict(
            # the labels given to the student's loss: (B,) indices or (B, C) soft labels
            gt_labels=dict(type='ModuleInputs', source='head.loss_module')),
        distill_losses=dict(
            _delete_=True,
            loss_gkl=dict(type='GKLDivergence', num_classes=10, alpha=1.0, beta=16.0,
                          gamma=0.05, tau=4.0, weight_tau=4.0, warmup=1)),
        loss_forward_mappings=dict(
            _delete_=True,
            loss_gkl=dict(
                preds_S=dict(from_student=True, recorder='fc'),
                preds_T=dict(from_student=False, recorder='fc'),
                gt_labels=dict(from_student=True, recorder='gt_labels', data_idx=1)))))

# closes the class prior after every epoch and drives the warm-up
custom_hooks = [dict(type='GKLPriorHook')]
