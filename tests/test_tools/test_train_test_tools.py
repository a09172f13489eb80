"""tools/train.py and tools/test.py as a user runs them (subprocesses)."""
import glob
import os
import os.path as osp
import subprocess
import sys

from _helpers import DEMO_CONFIG, REPO_ROOT, tiny_cfg, tiny_demo_options

ENV = dict(os.environ, OMP_NUM_THREADS='2')


def _run(*args, cwd):
    return subprocess.run([sys.executable, *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=600)


def test_train_resume_then_test_on_the_demo_config(tmp_path):
    """The demo config (ALWA_1), shrunk by --cfg-options: its data is
    generated on first use, training resumes, and test paints predictions."""
    work_dir = str(tmp_path / 'work')
    config = osp.join(REPO_ROOT, DEMO_CONFIG)
    data_root = str(tmp_path / 'data' / 'demo')
    train = osp.join(REPO_ROOT, 'tools/train.py')
    proc = _run(train, config, '--work-dir', work_dir, '--cfg-options',
                *tiny_demo_options(data_root, epochs=1), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert osp.isfile(osp.join(data_root, 'annotations', 'train.json'))
    assert osp.isfile(osp.join(work_dir, 'epoch_1.pth'))

    # --resume (auto) continues after epoch 1 up to the new max_epochs
    proc = _run(train, config, '--work-dir', work_dir, '--resume',
                '--cfg-options', *tiny_demo_options(data_root, epochs=2),
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert 'resumed epoch: 1, iter: 2' in proc.stdout + proc.stderr
    assert osp.isfile(osp.join(work_dir, 'epoch_2.pth'))

    proc = _run(osp.join(REPO_ROOT, 'tools/test.py'), config,
                osp.join(work_dir, 'epoch_2.pth'), '--work-dir', work_dir,
                '--show-dir', 'painted', '--out',
                str(tmp_path / 'preds.pkl'), '--cfg-options',
                *tiny_demo_options(data_root), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert 'coco/bbox_mAP' in proc.stdout + proc.stderr
    assert osp.isfile(tmp_path / 'preds.pkl')
    painted = glob.glob(osp.join(work_dir, '*', 'painted', '*.png'))
    assert len(painted) == 2  # every val image


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
