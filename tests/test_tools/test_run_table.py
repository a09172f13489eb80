"""tools/experiments/run_table.py: the tables file, the commands it prints,
and a 2-cell, 1-seed tiny table trained end to end, resumed and collected."""
import json
import os
import os.path as osp
import shutil
import sys

import pytest

from _helpers import REPO_ROOT, load_tool

sys.path.insert(0, osp.join(REPO_ROOT, 'tools', 'experiments'))
import table_spec  # noqa: E402


def _load(name):
    return load_tool(f'tools/experiments/{name}.py')


run_table = _load('run_table')
collect_table = _load('collect_table')


def test_table_layouts():
    t1 = table_spec.load_table('table1')
    assert len(t1.cells) == 20 * 6
    cell = t1.cell('w0.25_0.50', 'ciou')
    assert cell.key == 'w0.25_0.50-ciou'
    assert cell.config == 'configs/alwa/faster_rcnn_r50_baseline_ciou_voc.py'
    assert cell.cfg_options == {'model.rpn_head.loss_cls.loss_weight': 0.25,
                                'model.rpn_head.loss_bbox.loss_weight': 0.5}
    assert cell.baseline == 'w1.00_1.00-ciou'
    assert t1.cell('w1.00_1.00', 'l1').baseline is None
    assert t1.cell('w1.00_1.00', 'sgd_coco').metric == 'coco/bbox_mAP'
    # a scale profile may score another metric (the demo data is COCO)
    assert table_spec.load_table('table1', scale='tiny').cell(
        'w1.00_1.00', 'l1').metric == 'coco/bbox_mAP_50'
    # Table 2: each detector/backbone has its own baseline row
    t2 = table_spec.load_table('table2')
    cell = t2.cell('faster_rcnn_r101_alwa2', 'smoothl1')
    assert cell.config == \
        'configs/alwa/faster_rcnn_r101_alwa2_smoothl1_voc.py'
    assert cell.baseline == 'faster_rcnn_r101_baseline-smoothl1'
    # Table 3: the baseline is a column
    t3 = table_spec.load_table('table3')
    assert t3.cell('libra_rcnn', 'alwa1').baseline == 'libra_rcnn-initial'
    assert t3.cell('libra_rcnn', 'initial').baseline is None
    assert table_spec.load_table('table4').cell('guided', 'libra_rcnn') \
        .config == 'configs/balancers/libra_rcnn_r50_guided_voc.py'
    # one column: the cell is named by its row
    assert table_spec.load_table('study').cell(
        'alwa1_start', 'raccoon').key == 'alwa1_start'


@pytest.mark.parametrize('name', table_spec.table_names())
def test_every_cell_config_exists(name):
    table = table_spec.load_table(name)
    for cell in table.cells:
        assert osp.exists(osp.join(REPO_ROOT, cell.config)), cell.config


def test_cell_configs_carry_their_overrides():
    from mmdet.registry import HOOKS, MODELS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    t1 = table_spec.load_table('table1')
    cfg = table_spec.build_cell_config(t1, t1.cell('w0.10_0.50', 'ciou'),
                                       'paper', 3, '/tmp/x')
    assert cfg.randomness.seed == 3 and cfg.work_dir == '/tmp/x'
    cfg.model.backbone.init_cfg = None
    rpn = MODELS.build(cfg.model).rpn_head
    assert type(rpn.loss_bbox).__name__ == 'CIoULoss'
    assert (rpn.loss_cls.loss_weight, rpn.loss_bbox.loss_weight) == \
        (0.1, 0.5)
    # the study's hooks build, with the windows after the warm-up
    study = table_spec.load_table('study')
    for cell in study.cells:
        cfg = table_spec.build_cell_config(study, cell, 'cpu', 0, '/tmp/x')
        hooks = [h for h in cfg.default_hooks.values()
                 if h and h.get('type') == 'LossWeightingHook']
        assert len(hooks) == (cell.row != 'baseline'), cell.key
        for hook in hooks:
            built = HOOKS.build(hook)
            if cell.row == 'alwa1_start':
                assert (built.rule.start, built.rule.interval) == (30, 30)


def test_small_demo_rows():
    """Issue 19's table: plain, ALWA_1 on the RPN, ALWA_1 on the RoI head,
    ALWA_1 on the RPN with alpha_min = 0.5, DWA and MGDA-UB on the RPN, all
    shortened to 12 epochs of 40 iterations (320 images, batch 8), so
    that ALWA's C = 50 still gives 9 complete windows (>= 8)."""
    from mmdet.registry import HOOKS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    table = table_spec.load_table('small_demo')
    heads = {}
    for cell in table.cells:
        cfg = table_spec.build_cell_config(table, cell, 'paper', 2, '/tmp/x')
        assert (cfg.train_cfg.max_epochs, cfg.train_cfg.val_interval) == \
            (12, 12)
        assert cfg.param_scheduler[1].T_max == 12
        assert [e['type'] for e in cfg.val_evaluator] == [
            'CocoMetric', 'PerClassAPMetric']
        hook = cfg.default_hooks.get('alwa')
        heads[cell.row] = hook and hook['head']
        if cell.row == 'dwa':
            built = HOOKS.build(cfg.default_hooks.dwa)
            assert type(built.rule).__name__ == 'DWA'
            assert built.rule.interval == 50
        if cell.row == 'alwa1_floor':
            built = HOOKS.build(cfg.default_hooks.alwa)
            assert (built.rule.alpha_min, built.rule.variant) == (0.5, 1)
        if cell.row == 'mgda':
            built = HOOKS.build(cfg.default_hooks.mgda)
            assert type(built.rule).__name__ == 'MGDA'
            assert built.loss_paths == dict(cls=['rpn_head.loss_cls'],
                                            reg=['rpn_head.loss_bbox'])
        if hook:
            iters = 12 * cfg.demo_data.num_train // \
                cfg.train_dataloader.batch_size
            assert iters // hook['rule']['interval'] == 9
    assert heads == {'plain': None, 'alwa1': 'rpn_head',
                     'alwa1_floor': 'rpn_head',
                     'alwa1_roi': 'roi_head.bbox_head', 'dwa': None,
                     'mgda': None}
    assert table.cell('alwa1', 'small').baseline == 'plain'


def test_table6_rows_set_lambda0_and_C():
    t6 = table_spec.load_table('table6')
    cfg = table_spec.build_cell_config(t6, t6.cell('lambda0_0.50', 'ciou'),
                                       'paper', 0, '/tmp/x')
    rule = cfg.default_hooks.alwa.rule
    assert (rule.type, rule.variant, rule.init_weight, rule.interval) == \
        ('ALWA', 2, 0.5, 100)
    assert cfg.train_dataloader.batch_size == 4 and t6.gpus == 2
    cfg = table_spec.build_cell_config(t6, t6.cell('c_500', 'l1'), 'paper',
                                       0, '/tmp/x')
    assert cfg.default_hooks.alwa.rule.interval == 500


def test_override_of_a_missing_hook_is_an_error():
    study = table_spec.load_table('study')
    cell = study.cell('baseline', 'raccoon')
    cell.cfg_options = {'default_hooks.alwa.rule.interval': 20}
    with pytest.raises(ValueError, match="'default_hooks.alwa' is missing"):
        table_spec.build_cell_config(study, cell, 'cpu', 0, '/tmp/x')
    cell.cfg_options = {'default_hooks.alwa': {'rule': {'interval': 20}}}
    with pytest.raises(ValueError, match='default_hooks.alwa has no type'):
        table_spec.build_cell_config(study, cell, 'cpu', 0, '/tmp/x')


# the cells of the other tables are config files, which tests/test_configs.py
# builds
GENERATED = [n for n in table_spec.table_names()
             if any(c.cfg_options for c in table_spec.load_table(n).cells)]


def test_generated_tables():
    assert GENERATED == ['study', 'study_per_class', 'small_demo', 'table1',
                         'table6']


def test_study_per_class_logs_per_class_ap_and_recall():
    """Issue 19's per-class figures on raccoon: VOC mAP@0.5 as the study,
    plus PerClassAPMetric; ALWA_1 (C = 30) and MGDA-UB on the RPN."""
    from mmdet.registry import HOOKS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    table = table_spec.load_table('study_per_class')
    rules = {}
    for cell in table.cells:
        cfg = table_spec.build_cell_config(table, cell, 'cpu', 0, '/tmp/x')
        assert [e['type'] for e in cfg.val_evaluator] == [
            'VOCMetric', 'PerClassAPMetric']
        hooks = [h for h in cfg.default_hooks.values()
                 if h and h['type'] == 'LossWeightingHook']
        rules[cell.row] = [HOOKS.build(h).rule for h in hooks]
    assert rules['baseline'] == []
    (alwa,), (mgda,) = rules['alwa1'], rules['mgda']
    assert (type(alwa).__name__, alwa.variant, alwa.interval) == \
        ('ALWA', 1, 30)
    assert type(mgda).__name__ == 'MGDA'


@pytest.mark.parametrize('name', GENERATED)
def test_every_cell_config_parses_with_its_overrides(name):
    table = table_spec.load_table(name)
    for scale in table.scales:
        for cell in table.cells:
            cfg = table_spec.build_cell_config(table, cell, scale, 1, '/x')
            assert cfg.randomness.seed == 1


def test_override_of_a_missing_key_is_an_error():
    t1 = table_spec.load_table('table1')
    cell = t1.cell('w0.10_0.50', 'l1')
    cell.cfg_options = {'model.rpn_head.loss_cls.loss_weigth': 0.1}
    with pytest.raises(ValueError, match="'model.rpn_head.loss_cls."
                       "loss_weigth' is missing"):
        table_spec.build_cell_config(t1, cell, 'paper', 0, '/tmp/x')


def test_bad_tables(tmp_path, capsys):
    path = tmp_path / 't.yaml'
    path.write_text('tables:\n  t:\n    metric: m\n    config: c.py\n'
                    '    baseline: nope\n    columns: [{key: a}]\n'
                    '    rows: [{key: r}]\n')
    with pytest.raises(ValueError, match="baseline 'nope'"):
        table_spec.load_table('t', str(path))
    path.write_text('tables:\n  t:\n    metric: m\n    config: c.py\n'
                    '    columns: [{key: a}]\n'
                    '    rows: [{key: r}, {key: r}]\n')
    with pytest.raises(ValueError, match='duplicate keys'):
        table_spec.load_table('t', str(path))
    assert run_table.main(['nope']) == 2
    assert run_table.main(['table1', '--scale', 'cpu']) == 2
    assert run_table.main(['table1', '--cells', 'zzz*']) == 2
    err = capsys.readouterr().err
    assert "unknown table 'nope'" in err and "not 'cpu'" in err
    assert 'match no cell' in err


def test_print_commands(tmp_path, capsys):
    work = str(tmp_path)
    assert run_table.main(['table6', '--print-commands', '--seeds', '2',
                           '--cells', 'c_20-l1', '--work-dir', work]) == 0
    lines = capsys.readouterr().out.splitlines()
    run0 = osp.join(work, 'table6', 'c_20-l1', 'seed0')
    assert lines == [
        f'tools/dist_train.sh {run0}/config.py 2 --work-dir {run0}',
        f'tools/dist_train.sh {run0[:-1]}1/config.py 2 --work-dir '
        f'{run0[:-1]}1']
    text = open(osp.join(run0, 'config.py')).read()
    assert 'interval=20' in text and 'seed=0' in text
    # an interrupted run resumes
    open(osp.join(run0, 'last_checkpoint'), 'w').write('x')
    assert run_table.main(['table6', '--print-commands', '--seeds', '1',
                           '--cells', 'c_20-l1', '--work-dir', work,
                           '--launcher', 'slurm', '--partition', 'p1']) == 0
    assert capsys.readouterr().out.strip() == (
        f'GPUS=2 tools/slurm_train.sh p1 table6_c_20-l1_s0 {run0}/config.py '
        f'{run0} --resume')


def _tiny_options(root):
    root = root.rstrip('/') + '/'
    options = {
        'data_root': root, 'demo_data.num_train': 4, 'demo_data.num_val': 2,
        'demo_data.img_size': [96, 64],
        'val_evaluator.ann_file': root + 'annotations/val.json',
        'test_evaluator.ann_file': root + 'annotations/val.json',
        'train_cfg.max_epochs': 1, 'train_cfg.val_interval': 1,
        'model.test_cfg.rcnn.score_thr': 0.0,
        'default_hooks.logger.interval': 1,
    }
    for split in ('train', 'val', 'test'):
        options.update({f'{split}_dataloader.dataset.data_root': root,
                        f'{split}_dataloader.num_workers': 0,
                        f'{split}_dataloader.persistent_workers': False,
                        f'{split}_dataloader.batch_size': 2})
    return options


def test_tiny_table_end_to_end(tmp_path, capsys):
    """Two cells of Table 1 (weights (1, 1) and (0.25, 0.5), L1) on 4 demo
    images, 1 seed: trained, skipped when done, resumed when interrupted,
    collected."""
    work = str(tmp_path / 'work_dirs')
    args = ['table1', '--scale', 'tiny', '--seeds', '1',
            '--cells', 'w1.00_1.00-l1', 'w0.25_0.50-l1', '--work-dir', work,
            '--cfg-options', json.dumps(_tiny_options(str(tmp_path / 'd')))]
    assert run_table.main(args) == 0
    out = capsys.readouterr().out
    assert '2 runs, 0 done, 0 failed (skipped), 2 to run' in out
    runs = {c: osp.join(work, 'table1', c, 'seed0')
            for c in ('w1.00_1.00-l1', 'w0.25_0.50-l1')}
    for cell, path in runs.items():
        result = json.load(open(osp.join(path, 'result.json')))
        assert result['status'] == 'done', result.get('log_tail')
        assert 'coco/bbox_mAP_50' in result['metrics']
        assert result['resumed'] is False and result['wall_s'] > 0
    cfg_text = open(osp.join(runs['w0.25_0.50-l1'], 'config.py')).read()
    assert 'loss_weight=0.25' in cfg_text and 'base_channels=16' in cfg_text

    # finished runs are skipped
    assert run_table.main(args) == 0
    assert '2 done, 0 failed (skipped), 0 to run' in capsys.readouterr().out
    # an interrupted run (checkpoint, no result) resumes from its checkpoint
    os.remove(osp.join(runs['w0.25_0.50-l1'], 'result.json'))
    assert run_table.main(args) == 0
    result = json.load(open(osp.join(runs['w0.25_0.50-l1'], 'result.json')))
    assert result['status'] == 'done' and result['resumed'] is True
    assert result['command'][-1] == '--resume'

    # a failed run is kept and reported as failed
    shutil.rmtree(osp.join(work, 'table1', 'w0.25_0.50-l1'))
    bad = dict(_tiny_options(str(tmp_path / 'd')),
               **{'model.rpn_head.loss_cls.type': 'NoSuchLoss'})
    assert run_table.main(args[:-1] + [json.dumps(bad)]) == 1
    assert 'w0.25_0.50-l1 seed0: FAILED' in capsys.readouterr().out

    out_prefix = str(tmp_path / 'table1')
    assert collect_table.main(['table1', '--scale', 'tiny', '--work-dir',
                               work, '--out', out_prefix]) == 0
    md = open(out_prefix + '.md').read()
    assert '| (1.00,1.00) | ' in md and '(n=1)' in md
    assert '| (0.25,0.50) | 1 failed (exit code 1) |' in md
    assert md.count('not run') == 20 * 6 - 2
    assert '74.34' in md  # the paper's value beside ours
