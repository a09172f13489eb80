"""RichProgressHook on a real (tiny) Runner: what its lines show."""
import io

import pytest
from mmengine.runner import Runner
from rich.console import Console

from mmdet_alwa.engine.hooks import RichProgressHook

from _helpers import tiny_cfg


def test_iteration_based_run_with_alwa(tiny_data, tmp_path):
    cfg = tiny_cfg('configs/alwa/faster_rcnn_r50_alwa1_voc.py',
                   str(tmp_path), tiny_data, max_iters=4, val_interval=4)
    cfg.default_hooks.alwa.rule.interval = 2
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    cfg.visualizer.name = f'progress_{tmp_path.name}'
    screen = io.StringIO()
    runner = Runner.from_cfg(cfg)
    hook = RichProgressHook(window=2, console=Console(file=screen, width=200))
    runner.register_hook(hook)
    runner.train()
    lines = screen.getvalue().splitlines()
    trains = [line for line in lines if line.startswith('train ')]
    # not a terminal: a line at every tenth of the run (here every one of
    # the 4 iterations), then the bar's final state
    assert [t.split()[1] for t in trains[:4]] == ['1/4', '2/4', '3/4', '4/4']
    train = trains[-1]
    # 4 of 4 iterations; no epochs in an iteration-based loop; the loss
    # shown is the mean of the last 2 iterations, alpha the current one
    hub = runner.message_hub
    loss = sum(hub.get_scalar('train/loss').data[0][-2:]) / 2
    alpha = hub.get_scalar('train/alwa/alpha').current()
    assert '4/4' in train and 'epoch' not in train
    assert f'loss {loss:.3f}' in train and f'α(alwa) {alpha:.3f}' in train
    val = next(line for line in lines if line.startswith('val '))
    assert '2/2' in val and 'bbox_mAP_50 ' in val
    assert hook._progress is None  # stopped in after_run


@pytest.mark.parametrize('window', [0, 1.5, True])
def test_bad_window(window):
    with pytest.raises(ValueError, match='window'):
        RichProgressHook(window=window)
