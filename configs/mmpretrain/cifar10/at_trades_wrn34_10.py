# The TRADES baseline of at_gkl_wrn34_10.py: CE(natural) + 6 * KL(natural || adversarial)
# with the same WRN-34-10, training attack, AWP, weight averaging, schedule and seed, so the
# two runs differ only in the robust loss. Published TRADES+AWP: 56.17% under AutoAttack.
_base_ = ['./at_gkl_wrn34_10.py']

model = dict(robust_loss=dict(_delete_=True, type='trades', beta=6.0))
# No GKL loss, so no class prior to close.
custom_hooks = [
    dict(type='EMAHook', ema_type='ExponentialMovingAverage', momentum=4e-4,
         begin_epoch=150, update_buffers=True),
]
