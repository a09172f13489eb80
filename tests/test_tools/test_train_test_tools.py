"""tools/train.py and tools/test.py as a user runs them (subprocesses)."""
import glob
import os
import os.path as osp
import subprocess
import sys

from _helpers import REPO_ROOT, tiny_cfg

ENV = dict(os.environ, OMP_NUM_THREADS='2')


def _run(*args, cwd):
    return subprocess.run([sys.executable, *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=600)


def test_train_resume_then_test_with_show_dir(tiny_data, tmp_path):
    work_dir = str(tmp_path / 'work')
    cfg = tiny_cfg('configs/_base_/retinanet_r50_voc.py', work_dir,
                   tiny_data, max_iters=2, checkpoint_interval=1,
                   val_interval=100)
    cfg_path = str(tmp_path / 'tiny.py')
    cfg.dump(cfg_path)
    train = osp.join(REPO_ROOT, 'tools/train.py')
    proc = _run(train, cfg_path, '--work-dir', work_dir, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert osp.isfile(osp.join(work_dir, 'iter_2.pth'))

    # --resume (auto) continues from iter 2 up to the new max_iters
    proc = _run(train, cfg_path, '--work-dir', work_dir, '--resume',
                '--cfg-options', 'train_cfg.max_iters=3', cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert 'resumed epoch: 0, iter: 2' in proc.stdout + proc.stderr
    assert osp.isfile(osp.join(work_dir, 'iter_3.pth'))

    proc = _run(osp.join(REPO_ROOT, 'tools/test.py'), cfg_path,
                osp.join(work_dir, 'iter_3.pth'), '--work-dir', work_dir,
                '--show-dir', 'painted', '--out',
                str(tmp_path / 'preds.pkl'), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert 'coco/bbox_mAP' in proc.stdout + proc.stderr
    assert osp.isfile(tmp_path / 'preds.pkl')
    painted = glob.glob(osp.join(work_dir, '*', 'painted', '*.png'))
    assert len(painted) == 4  # every val image


def test_missing_dataset_names_the_path(tmp_path):
    proc = _run(osp.join(REPO_ROOT, 'tools/train.py'),
                osp.join(REPO_ROOT, 'configs/_base_/faster_rcnn_r50_voc.py'),
                '--work-dir', str(tmp_path / 'w'), cwd=tmp_path)
    assert proc.returncode != 0
    assert 'data/VOCdevkit/' in proc.stderr
    assert 'Preparing datasets' in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_amp_without_gpu_is_a_clear_error(tiny_data, tmp_path):
    cfg = tiny_cfg('configs/_base_/retinanet_r50_voc.py', str(tmp_path),
                   tiny_data, max_iters=1)
    cfg.dump(str(tmp_path / 'tiny.py'))
    proc = _run(osp.join(REPO_ROOT, 'tools/train.py'),
                str(tmp_path / 'tiny.py'), '--amp', cwd=tmp_path)
    assert proc.returncode != 0
    assert '--amp needs a CUDA GPU' in proc.stderr
