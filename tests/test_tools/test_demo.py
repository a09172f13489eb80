"""tools/demo.py end to end on a tiny version of the demo (ALWA_1 config)."""
import importlib.util
import json
import os.path as osp

from _helpers import REPO_ROOT, tiny_demo_options


def _load_demo():
    spec = importlib.util.spec_from_file_location(
        'demo_tool', osp.join(REPO_ROOT, 'tools', 'demo.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_generates_trains_evaluates_and_visualises(tmp_path, capsys):
    demo = _load_demo()
    root = str(tmp_path / 'data' / 'demo') + '/'
    argv = ['--config', demo.DEFAULT_CONFIG, '--work-dir',
            str(tmp_path / 'work'), '--num-vis', '2', '--cfg-options',
            *tiny_demo_options(root)]
    result = demo.main(argv)

    # the data was generated with the config's parameters
    with open(osp.join(root, 'annotations', 'train.json')) as f:
        assert len(json.load(f)['images']) == 4
    assert set(result['metrics']) == {'bbox_mAP', 'bbox_mAP_50'}
    assert all(0 <= v <= 1 for v in result['metrics'].values())
    assert osp.isfile(result['checkpoint'])
    assert len(result['vis']) == 2 and all(map(osp.isfile, result['vis']))
    # 4 iterations with C = 2: alpha starts at 1 and is logged every
    # iteration it is printed (the trajectory keeps the changes only)
    traj = result['alphas']['alwa/alpha']
    assert traj[0] == (1, 1.0)
    assert all(0 < v <= 1 for _, v in traj)
    out = capsys.readouterr().out
    for line in ('bbox_mAP_50:', 'log:', 'checkpoint:', 'predictions:',
                 'alwa/alpha'):
        assert line in out
