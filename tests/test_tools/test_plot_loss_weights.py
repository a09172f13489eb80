"""tools/analysis_tools/plot_loss_weights.py on a real tiny ALWA run."""
import os.path as osp

import matplotlib.image as mpimg
import pytest
from mmengine.runner import Runner

from _helpers import load_tool, tiny_cfg


def _load_tool():
    return load_tool('tools/analysis_tools/plot_loss_weights.py')


@pytest.fixture(scope='module')
def alwa_work_dir(tiny_data, tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('plot'))
    cfg = tiny_cfg('configs/alwa/retinanet_r50_alwa1_voc.py', work_dir,
                   tiny_data, max_iters=4)
    cfg.default_hooks.alwa.rule.interval = 2
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    # a visualizer named like an earlier one in this process would be reused,
    # with that run's log folder
    cfg.visualizer.name = f'plot_test_{work_dir}'
    Runner.from_cfg(cfg).train()
    return work_dir


def test_plot_from_work_dir(alwa_work_dir, tmp_path, capsys):
    tool = _load_tool()
    records = tool.load_scalars(alwa_work_dir)
    assert sorted(records) == [1, 2, 3, 4]
    assert tool.find_name(records) == 'alwa'
    out = str(tmp_path / 'w.png')
    assert tool.main([alwa_work_dir, '--out', out]) == 0
    assert 'wrote' in capsys.readouterr().out
    assert mpimg.imread(out).shape[0] > 100
    drawn = tool.plot(records, 'alwa', str(tmp_path / 'x.png'))
    assert drawn == ['alpha', 'cls_mean', 'cls_std', 'reg_mean', 'reg_std']
    # default output next to the logs
    assert tool.main([alwa_work_dir]) == 0
    assert osp.isfile(osp.join(alwa_work_dir, 'loss_weights.png'))


def test_errors(alwa_work_dir, tmp_path):
    tool = _load_tool()
    with pytest.raises(FileNotFoundError, match='scalars.json'):
        tool.main([str(tmp_path)])
    with pytest.raises(ValueError, match='no weights logged'):
        tool.plot(tool.load_scalars(alwa_work_dir), 'nope',
                  str(tmp_path / 'n.png'))


def test_gradient_aggregation_run(tiny_data, tmp_path):
    """A real tiny RetinaNet run with MGDA: the weights, the gradient
    cosine and the squared norms are logged and drawn."""
    tool = _load_tool()
    work_dir = str(tmp_path / 'mgda')
    cfg = tiny_cfg('configs/balancers/retinanet_r50_mgda_voc.py', work_dir,
                   tiny_data, max_iters=2)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    cfg.visualizer.name = f'plot_test_{work_dir}'
    Runner.from_cfg(cfg).train()
    records = tool.load_scalars(work_dir)
    assert tool.find_name(records) == 'mgda'
    # MGDA's weights lie on the simplex
    for rec in records.values():
        assert rec['mgda/weight_cls'] + rec['mgda/weight_reg'] == \
            pytest.approx(1.0)
        assert -1 <= rec['mgda/cos_cls_reg'] <= 1
    drawn = tool.plot(records, 'mgda', str(tmp_path / 'm.png'))
    assert drawn == ['weight_cls', 'weight_reg', 'cos_cls_reg',
                     'sqnorm_cls', 'sqnorm_reg']
    assert mpimg.imread(str(tmp_path / 'm.png')).shape[0] > 300
