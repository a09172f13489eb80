"""Distributed training and testing on CPU: tools/dist_train.sh and
tools/dist_test.sh with 2 gloo processes."""
import os
import os.path as osp
import subprocess
import sys

from _helpers import REPO_ROOT, _free_port, tiny_cfg


def test_dist_train_and_test_two_processes_on_cpu(tiny_data, tmp_path):
    work_dir = str(tmp_path / 'ddp')
    cfg = tiny_cfg('configs/_base_/faster_rcnn_r50_voc.py', work_dir,
                   tiny_data, max_iters=2, val_interval=100)
    cfg_path = str(tmp_path / 'tiny_frcnn.py')
    cfg.dump(cfg_path)
    env = dict(os.environ, PORT=str(_free_port()), PYTHON=sys.executable,
               OMP_NUM_THREADS='1')
    proc = subprocess.run(
        ['bash', osp.join(REPO_ROOT, 'tools/dist_train.sh'), cfg_path, '2'],
        cwd=str(tmp_path), env=env, capture_output=True, text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert osp.isfile(osp.join(work_dir, 'iter_2.pth'))
    # mmengine logs the world size as 'GPU number' even on the CPU
    log = proc.stdout + proc.stderr
    assert 'Distributed launcher: pytorch' in log
    assert 'GPU number: 2' in log

    proc = subprocess.run(
        ['bash', osp.join(REPO_ROOT, 'tools/dist_test.sh'), cfg_path,
         osp.join(work_dir, 'iter_2.pth'), '2'],
        cwd=str(tmp_path), env=dict(env, PORT=str(_free_port())),
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert 'coco/bbox_mAP' in proc.stdout + proc.stderr
