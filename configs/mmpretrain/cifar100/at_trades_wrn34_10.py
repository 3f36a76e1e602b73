# The TRADES baseline of at_gkl_wrn34_10.py on CIFAR-100: CE(natural) + 6 * KL(natural ||
# adversarial), everything else shared. Published TRADES+AWP: 28.86% under AutoAttack.
_base_ = ['./at_gkl_wrn34_10.py']

model = dict(robust_loss=dict(_delete_=True, type='trades', beta=6.0))
# No GKL loss, so no class prior to close.
custom_hooks = [
    dict(type='EMAHook', ema_type='ExponentialMovingAverage', momentum=4e-4,
         begin_epoch=150, update_buffers=True),
]
