"""tools/demo.py end to end on a tiny version of the demo (ALWA_1 config)."""
import json
import os.path as osp

from _helpers import load_tool, tiny_demo_options


def _load_demo():
    return load_tool('tools/demo.py', 'demo_tool')


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
    # a progress display instead of mmengine's log lines and pycocotools'
    # prints, which go to the log file whose path is printed first
    log_file = osp.join(result['log_dir'],
                        osp.basename(result['log_dir']) + '.log')
    assert f'full log: {log_file}' in out.splitlines()[1]
    train_line = [line for line in out.splitlines()
                  if line.startswith('train ')][-1]
    assert '4/4' in train_line and 'epoch 2/2' in train_line
    assert 'loss ' in train_line and 'α(alwa) ' in train_line
    assert 'ETA' in train_line
    assert 'bbox_mAP_50 ' in next(line for line in out.splitlines()
                                  if line.startswith('val '))
    assert 'mmengine - INFO' not in out and 'index created' not in out
    log = open(log_file).read()
    assert 'Epoch(train)' in log and 'index created' in log
    assert 'Average Precision' in log


def test_demo_verbose_keeps_mmengines_log_lines(tmp_path, capsys):
    demo = _load_demo()
    root = str(tmp_path / 'data' / 'demo') + '/'
    demo.main(['--work-dir', str(tmp_path / 'work'), '--num-vis', '0',
               '--verbose', '--cfg-options',
               *tiny_demo_options(root, epochs=1)])
    out = capsys.readouterr().out
    assert 'Epoch(train)' in out and 'α(alwa)' not in out
