"""A downstream project uses the pip-installed wheel: its configs by package
scope (``_base_ = 'mmdet_alwa::alwa/...'``), trained by mmdet's own
``tools/train.py`` in a process that never imported ``mmdet_alwa`` before
the config was read, from a folder outside this repository.

The wheel goes into a fresh venv that reuses this environment's torch, mmcv
and mmdet: a ``.pth`` naming this environment's site-packages, because
``venv --system-site-packages`` over a venv would give the base interpreter's
packages, not the venv's; ``.pth`` files of a folder added that way do not
run, so this environment's own (editable) mmdet_alwa stays out of the way.
"""
import glob
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import sysconfig

import cv2
import numpy as np
import pytest
import yaml

from _helpers import REPO_ROOT, voc_xml

# top-level names of the checkout that are not part of a build
_NOT_SOURCES = {'.git', '.venv', 'data', 'work_dirs', 'build', '.whl',
                '.pytest_cache'}


def _ignore(folder, names):
    top = osp.abspath(folder) == REPO_ROOT
    return [n for n in names
            if (top and n in _NOT_SOURCES) or n == '__pycache__'
            or n.endswith('.egg-info')]


def _run(cmd, cwd, timeout=120):
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    env.update(OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f'{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}')
    return proc.stdout


@pytest.fixture(scope='module')
def venv_python(tmp_path_factory):
    """A fresh venv with the wheel built from a copy of the checkout."""
    tmp = tmp_path_factory.mktemp('wheel')
    src = tmp / 'src'
    shutil.copytree(REPO_ROOT, src, ignore=_ignore, symlinks=True)
    _run([sys.executable, '-m', 'pip', 'wheel', '--no-deps',
          '--no-build-isolation', '-q', '-w', str(tmp / 'dist'), str(src)],
         cwd=tmp)
    wheel, = glob.glob(str(tmp / 'dist' / 'mmdet_alwa-*.whl'))
    venv = tmp / 'venv'
    _run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], cwd=tmp)
    python = str(venv / 'bin' / 'python')
    site = _run([python, '-c', 'import sysconfig; '
                 'print(sysconfig.get_paths()["purelib"])'], cwd=tmp).strip()
    ours = sysconfig.get_paths()
    with open(osp.join(site, 'project_env.pth'), 'w') as f:
        f.write(f'{ours["purelib"]}\n{ours["platlib"]}\n')
    _run([sys.executable, '-m', 'pip', '--python', python, 'install', '-q',
          '--no-deps', '--no-index', wheel], cwd=tmp)
    return python


def _write_tiny_voc(root):
    """4 images (VOC2007: 2, VOC2012: 2) of one large VOC 'car' each."""
    for year, ids in (('VOC2007', (0, 1)), ('VOC2012', (2, 3))):
        base = osp.join(root, year)
        for sub in ('JPEGImages', 'Annotations', 'ImageSets/Main'):
            os.makedirs(osp.join(base, sub))
        for i in ids:
            img = np.full((96, 128, 3), 90, np.uint8)
            img[16:80, 20:90] = (200, 30 + 40 * i, 30)
            cv2.imwrite(osp.join(base, 'JPEGImages', f'{i:06d}.jpg'), img)
            with open(osp.join(base, 'Annotations', f'{i:06d}.xml'), 'w') as f:
                f.write(voc_xml([('car', [20, 16, 90, 80])], size=(128, 96)))
        with open(osp.join(base, 'ImageSets/Main/trainval.txt'), 'w') as f:
            f.write(''.join(f'{i:06d}\n' for i in ids))


DOWNSTREAM = """\
_base_ = 'mmdet_alwa::alwa/faster_rcnn_r50_alwa1_voc.py'

# our data
data_root = '{root}/'
_voc = dict(type='VOCDataset', data_root=data_root,
            filter_cfg=dict(filter_empty_gt=True, min_size=32,
                            bbox_min_size=32),
            pipeline={{{{_base_.train_pipeline}}}})
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(dataset=dict(datasets=[
        dict(_voc, ann_file='VOC2007/ImageSets/Main/trainval.txt',
             data_prefix=dict(sub_data_root='VOC2007/')),
        dict(_voc, ann_file='VOC2012/ImageSets/Main/trainval.txt',
             data_prefix=dict(sub_data_root='VOC2012/'))])))
val_dataloader = val_cfg = val_evaluator = None
test_dataloader = test_cfg = test_evaluator = None
# a tiny model, trained 2 iterations
model = dict(
    backbone=dict(depth=18, base_channels=8, init_cfg=None),
    neck=dict(in_channels=[8, 16, 32, 64], out_channels=16),
    rpn_head=dict(in_channels=16, feat_channels=16),
    roi_head=dict(bbox_roi_extractor=dict(out_channels=16),
                  bbox_head=dict(in_channels=16, fc_out_channels=32)))
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=2)
# one of our knobs, in one line: ALWA's window C
default_hooks = dict(logger=dict(interval=1), alwa=dict(rule=dict(interval=2)))
"""

# in the venv, before anything imported mmdet_alwa: resolve and parse one
# config of each family; then what mim finds (when openmim is installed)
PROBE = """\
import json, sys
from mmengine.config import Config
out = dict(paths={}, mim=None)
for name in sys.argv[1:]:
    out['paths'][name] = Config._get_cfg_path(name, 'child.py')[0]
    with open('child.py', 'w') as f:
        f.write(f'_base_ = {name!r}')
    Config.fromfile('child.py', import_custom_modules=False)
out['imported'] = 'mmdet_alwa' in sys.modules
try:
    from mim import get_model_info
except ImportError:
    pass
else:
    out['mim'] = sorted(get_model_info('mmdet_alwa', to_dict=True))
print(json.dumps(out))
"""


def _metafile_configs():
    index = yaml.safe_load(open(osp.join(REPO_ROOT, 'model-index.yml')))
    names = []
    for meta in index['Import']:
        models = yaml.safe_load(open(osp.join(REPO_ROOT, meta)))['Models']
        names += [m['Name'] for m in models]
    return sorted(names)


def test_package_scope_without_our_import(venv_python, tmp_path):
    configs = ['mmdet_alwa::alwa/faster_rcnn_r50_alwa1_voc.py',
               'mmdet_alwa::balancers/retinanet_r50_dtp_voc.py',
               'mmdet_alwa::simclr/simclr_r50_voc.py',
               'mmdet_alwa::demo/faster_rcnn_r18_alwa1_demo.py']
    out = json.loads(_run([venv_python, '-c', PROBE, *configs],
                          cwd=tmp_path).splitlines()[-1])
    assert not out['imported']
    venv = osp.dirname(osp.dirname(venv_python))
    for name, path in out['paths'].items():
        rel = name.split('::')[1]
        assert path.startswith(venv + os.sep) and path.endswith(
            osp.join('mmdet_alwa', '.mim', 'configs', rel))
    if out['mim'] is not None:  # openmim (requirements/tests.txt)
        assert out['mim'] == _metafile_configs()


def test_downstream_config_trains_with_mmdets_train_py(venv_python,
                                                       tmp_path):
    import mmdet
    train_py = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools',
                        'train.py')
    _write_tiny_voc(str(tmp_path / 'VOCdevkit'))
    (tmp_path / 'my_alwa.py').write_text(
        DOWNSTREAM.format(root=tmp_path / 'VOCdevkit'))
    _run([venv_python, train_py, 'my_alwa.py', '--work-dir', 'work'],
         cwd=tmp_path, timeout=240)
    scalars, = glob.glob(str(tmp_path / 'work' / '*' / 'vis_data' /
                             'scalars.json'))
    records = [json.loads(line) for line in open(scalars)]
    assert [r['step'] for r in records] == [1, 2]
    first, second = records
    # ALWA_1 (Algorithm 1) after its window of C = 2 iterations (the
    # child's knob): alpha = (mean + std)(reg) / (mean + std)(cls) of the
    # window, as the hook logged them
    assert first['alwa/alpha'] == 1.0
    expected = ((second['alwa/reg_mean'] + second['alwa/reg_std']) /
                (second['alwa/cls_mean'] + second['alwa/cls_std']))
    assert second['alwa/alpha'] == pytest.approx(expected, rel=1e-4)
    assert second['alwa/alpha'] < 1
    assert second['loss_rpn_cls'] > 0 and 'loss_cls' in second
