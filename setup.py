import os.path as osp
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = osp.dirname(osp.abspath(__file__))
#: shipped in mmdet_alwa/.mim/, mmdet's layout: mmengine reads
#: .mim/configs for `mmdet_alwa::` configs, openmim reads the model index
#: (`mim search mmdet_alwa`) and finds configs and tools (`mim train`)
MIM_FILES = ('configs', 'tools', 'model-index.yml')
#: at the top of site-packages: registers the `mmdet_alwa::` config scope
#: with mmengine at interpreter start (see _mmdet_alwa_scope.py)
SCOPE_PTH = 'mmdet_alwa-scope.pth'


class BuildPy(build_py):
    """build_py that also copies :data:`MIM_FILES` into
    ``mmdet_alwa/.mim/`` and :data:`SCOPE_PTH` next to the package (what
    mmdet's ``add_mim_extension`` does for wheels, as a build step instead of
    files written into the source tree)."""

    def run(self):
        super().run()
        if self.editable_mode:  # an editable install reads the checkout
            return
        mim = osp.join(self.build_lib, 'mmdet_alwa', '.mim')
        shutil.rmtree(mim, ignore_errors=True)  # no stale files of a rebuild
        for name in MIM_FILES:
            src, dst = osp.join(HERE, name), osp.join(mim, name)
            if osp.isdir(src):
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns(
                    '__pycache__', '*.pyc'))
            else:
                self.copy_file(src, dst)
        self.copy_file(osp.join(HERE, SCOPE_PTH),
                       osp.join(self.build_lib, SCOPE_PTH))


def read_requirements(name):
    with open(osp.join(HERE, 'requirements', name)) as f:
        return [line.split('#')[0].strip() for line in f
                if line.split('#')[0].strip()]


version = {}
with open(osp.join(HERE, 'mmdet_alwa', 'version.py')) as f:
    exec(f.read(), version)

setup(
    name='mmdet_alwa',
    version=version['__version__'],
    description='Adaptive loss weighting (ALWA and friends) for MMDetection 3.x',
    long_description=open(osp.join(HERE, 'README.md')).read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['mmdet_alwa', 'mmdet_alwa.*']),
    py_modules=['_mmdet_alwa_scope'],
    cmdclass=dict(build_py=BuildPy),
    python_requires='>=3.11,<3.14',
    # ranges; the exact versions of our own runs: requirements/constraints.txt
    install_requires=read_requirements('runtime.txt'),
    extras_require=dict(
        tools=read_requirements('tools.txt'),
        tests=read_requirements('tests.txt') + read_requirements('tools.txt'),
        # TorchJD's own extras, for its aggregators (UPGrad, DualProj: the
        # quadprog projector; CAGrad: cvxpy). The extra is spelled with a
        # hyphen, torchjd[quadprog-projector]: TorchJD 0.18's error message
        # writes quadprog_projector, which pip (23.2) only warns "does not
        # provide the extra" about and installs nothing for
        quadprog=['torchjd[quadprog-projector]>=0.18,<0.19'],
        cagrad=['torchjd[cagrad]>=0.18,<0.19']),
    license='Apache-2.0',
    classifiers=[
        'Programming Language :: Python :: 3',
        'Programming Language :: Python :: 3.11',
        'Programming Language :: Python :: 3.12',
        'Programming Language :: Python :: 3.13',
        'License :: OSI Approved :: Apache Software License',
        'Operating System :: OS Independent',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
)
