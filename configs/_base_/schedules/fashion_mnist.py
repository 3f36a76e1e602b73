# A short CPU schedule: SGD with a linear warm-up over the first 50 iterations, then a
# cosine decay to the end of training. The decay ends at train_cfg.max_epochs, whatever it
# is set to (mmengine ends a scheduler without `end` at the last epoch), so overriding the
# number of epochs needs no other change.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, eta_min=5e-4,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=5, val_interval=1)
val_cfg = dict()
test_cfg = dict()
