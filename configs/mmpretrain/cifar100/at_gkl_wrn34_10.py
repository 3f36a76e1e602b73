# GKL adversarial training of WRN-34-10 on CIFAR-100, L-inf eps 8/255: the reference setting
# (GKL_MATH.md section 5: alpha 4, beta 20, gamma 0.4, T 1, class prior at T2 = 1); attack,
# AWP, weight averaging and schedule as for CIFAR-10. Published: 65.76% clean, 31.91% under
# AutoAttack.
_base_ = ['../cifar10/at_gkl_wrn34_10.py']

num_classes = 100
data_preprocessor = dict(num_classes=num_classes)
model = dict(
    classifier=dict(head=dict(num_classes=num_classes)),
    robust_loss=dict(alpha=4.0, beta=20.0, gamma=0.4, temperature=1.0,
                     weight_temperature=1.0),
)
dataset_type = 'CIFAR100'
data_root = 'data/cifar100'
train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = val_dataloader
