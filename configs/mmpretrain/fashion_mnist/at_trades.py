# The TRADES baseline of at_gkl.py: CE(natural) + 6 * KL(natural || adversarial), with the
# same model, data, attack, weight perturbation, averaging, schedule and seed.
_base_ = ['./at_gkl.py']

model = dict(robust_loss=dict(_delete_=True, type='trades', beta=6.0))
# No GKL loss, so no class prior to close.
custom_hooks = [
    dict(type='EMAHook', ema_type='ExponentialMovingAverage', momentum=0.02, begin_epoch=1,
         update_buffers=True),
]
