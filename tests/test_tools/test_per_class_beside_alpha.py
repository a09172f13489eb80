"""Per-class AP@0.5 beside α (issue 19): tools/demo.py's summary and
tools/analysis_tools/plot_loss_weights.py on a scalars.json written here,
in mmengine's layout (training records with iter and lr; a validation's
record after the training records of its iteration, step = the epoch)."""
import json

import matplotlib.image as mpimg

from _helpers import load_tool

TRAIN = [dict(lr=1e-3, iter=10, epoch=1, step=10, **{'alwa/alpha': 1.0}),
         dict(lr=1e-3, iter=20, epoch=1, step=20, **{'alwa/alpha': 0.24})]
VAL1 = {'coco/bbox_mAP_50': 0.5, 'per_class/mAP50': 0.5,
        'per_class/disc_AP50': 0.1, 'per_class/disc_recall': 0.2,
        'per_class/disc_num_dets': 3, 'per_class/square_AP50': 0.9,
        'per_class/square_recall': 0.95, 'per_class/square_num_dets': 40,
        'step': 1}
TRAIN2 = [dict(lr=1e-3, iter=30, epoch=2, step=30, **{'alwa/alpha': 0.24}),
          dict(lr=1e-3, iter=40, epoch=2, step=40, **{'alwa/alpha': 0.5})]
VAL2 = dict(VAL1, **{'per_class/disc_AP50': 0.2, 'per_class/disc_recall': 0.4,
                     'per_class/disc_num_dets': 7,
                     'per_class/square_AP50': 0.8, 'step': 2})
RECORDS = TRAIN + [VAL1] + TRAIN2 + [VAL2]


def _work_dir(tmp_path):
    vis = tmp_path / '20260101_000000' / 'vis_data'
    vis.mkdir(parents=True)
    (vis / 'scalars.json').write_text(
        ''.join(json.dumps(r) + '\n' for r in RECORDS))
    return str(tmp_path)


def test_plot_shows_per_class_ap_beside_alpha(tmp_path, capsys):
    tool = load_tool('tools/analysis_tools/plot_loss_weights.py')
    work_dir = _work_dir(tmp_path)
    val = tool.load_val_records(work_dir)
    assert [it for it, _ in val] == [20, 40]
    assert tool.per_class_ap(val) == {'disc': ([20, 40], [0.1, 0.2]),
                                      'square': ([20, 40], [0.9, 0.8])}
    records = tool.load_scalars(work_dir)
    assert sorted(records) == [10, 20, 30, 40]
    drawn = tool.plot(records, 'alwa', str(tmp_path / 'p.png'), val)
    assert drawn == ['alpha', 'AP50/disc', 'AP50/square']
    assert mpimg.imread(str(tmp_path / 'p.png')).shape[0] > 100
    assert tool.main([work_dir]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == [
        'iter 20: alpha 0.240; AP@0.5 disc 0.100, square 0.900',
        'iter 40: alpha 0.500; AP@0.5 disc 0.200, square 0.800']


def test_demo_summary_lists_the_last_validation():
    demo = load_tool('tools/demo.py')
    per_class = demo.per_class_summary(RECORDS)
    assert per_class == [
        ('disc', {'AP50': 0.2, 'recall': 0.4, 'num_dets': 7}),
        ('square', {'AP50': 0.8, 'recall': 0.95, 'num_dets': 40})]
    alphas = demo.alpha_trajectory(RECORDS)
    assert alphas == {'alwa/alpha': [(10, 1.0), (20, 0.24), (40, 0.5)]}
    lines = demo.per_class_text(per_class, alphas)
    assert lines[0] == ('per class at the last validation (final '
                        'alwa/alpha 0.500):')
    assert lines[1].split() == ['disc', 'AP@0.5', '0.200', 'recall',
                                '0.400', 'detections', '7']
    assert demo.per_class_summary(TRAIN) == []
    assert demo.per_class_text([], alphas) == []
