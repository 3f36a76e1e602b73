"""Packaging for gkl-plugins.

The extras pin the host frameworks to releases measured to work together on torch 2.14
(CPU). Detectron2 is not published on PyPI under its own name: ``scripts/install_detectron2.sh``
installs it, and any detectron2 >= 0.6 that a user already has is accepted as it is.
"""
from setuptools import find_packages, setup

TORCH = ['torch>=2.0']
OPENMMLAB = ['mmengine==0.10.7', 'mmcv-lite==2.1.0']
EXTRAS = {
    # scipy: torchattacks (installed without its dependencies) needs it.
    'mmpretrain': OPENMMLAB + ['mmpretrain==1.2.0', 'torchvision', 'scipy'],
    # mmrazor uses joblib without declaring it.
    'mmrazor': OPENMMLAB + ['mmpretrain==1.2.0', 'mmrazor==1.0.0', 'joblib', 'torchvision'],
    # detectron2 itself comes from scripts/install_detectron2.sh or the user's own build.
    'detectron2': ['torchvision', 'pycocotools', 'Pillow<10'],
    'demo': ['matplotlib'],
    # foolbox ships 20 real CIFAR-10 and 20 CIFAR-100 test images that the tests read.
    'test': ['pytest', 'ruff', 'foolbox==3.3.4'],
}
EXTRAS['all'] = sorted({req for reqs in EXTRAS.values() for req in reqs})

setup(
    name='gkl-plugins',
    version='0.1.0',
    description='Generalized Kullback-Leibler divergence loss for OpenMMLab and Detectron2',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['gkl_plugins', 'gkl_plugins.*']),
    include_package_data=True,
    python_requires='>=3.8',
    install_requires=TORCH + ['numpy'],
    extras_require=EXTRAS,
    entry_points={
        'console_scripts': [
            'gkl-train=gkl_plugins.mmengine.train:main',
            'gkl-d2-train=gkl_plugins.detectron2.train_net:main',
        ],
    },
    license='Apache-2.0',
)
