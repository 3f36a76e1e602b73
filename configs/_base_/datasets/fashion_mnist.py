# Fashion-MNIST read offline from its idx files (Debian's dataset-fashion-mnist by default;
# set GKL_FASHION_MNIST_ROOT or data_root elsewhere). Shrink the training set for a quick run
# with --cfg-options train_dataloader.dataset.num_samples=500 (a fixed, class-balanced
# subset).
custom_imports = dict(imports=['gkl_plugins.mmpretrain.datasets'], allow_failed_imports=False)

dataset_type = 'OfflineFashionMNIST'
# Mean and standard deviation of the training images, in pixel values. The scoped type lets
# distillers in other scopes reuse this dict.
data_preprocessor = dict(type='mmpretrain.ClsDataPreprocessor', num_classes=10, mean=[72.94],
                         std=[90.02], to_rgb=False)

train_pipeline = [
    dict(type='RandomCrop', crop_size=28, padding=2),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]

train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    dataset=dict(type=dataset_type, split='train', num_samples=None,
                 pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=256,
    num_workers=0,
    dataset=dict(type=dataset_type, split='test', num_samples=None, pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
