import os.path as osp

from setuptools import find_packages, setup


def read_requirements(name):
    with open(osp.join(osp.dirname(__file__), 'requirements', name)) as f:
        return [line.split('#')[0].strip() for line in f
                if line.split('#')[0].strip()]


version = {}
with open(osp.join(osp.dirname(__file__), 'mmdet_alwa', 'version.py')) as f:
    exec(f.read(), version)

setup(
    name='mmdet_alwa',
    version=version['__version__'],
    description='Adaptive loss weighting (ALWA and friends) for MMDetection 3.x',
    long_description=open('README.md').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['mmdet_alwa', 'mmdet_alwa.*']),
    python_requires='>=3.11,<3.12',
    install_requires=read_requirements('runtime.txt'),
    extras_require=dict(tests=read_requirements('tests.txt')),
    license='Apache-2.0',
)
