"""What the tools do with a config's datasets before the Runner
(mmdet_alwa.datasets.prepare_datasets): generate the built-in demo data, then
name every dataset path that does not exist."""
import json
import re

import pytest
from mmengine.config import Config

from mmdet_alwa.datasets import prepare_datasets
from mmdet_alwa.datasets.check import (check_dataset_paths,
                                       missing_dataset_paths)


def test_missing_dataset_paths_walks_wrappers(tmp_path):
    (tmp_path / 'voc' / 'VOC2007').mkdir(parents=True)
    cfg = Config(dict(train_dataloader=dict(dataset=dict(
        type='RepeatDataset', times=3, dataset=dict(
            type='ConcatDataset', datasets=[
                dict(data_root=str(tmp_path / 'voc'),
                     ann_file='VOC2007/trainval.txt'),
                dict(data_root=str(tmp_path / 'nowhere'),
                     ann_file='x.txt')])))))
    missing = missing_dataset_paths(cfg)
    assert missing == [str(tmp_path / 'voc' / 'VOC2007/trainval.txt'),
                       str(tmp_path / 'nowhere')]
    with pytest.raises(FileNotFoundError, match='Preparing datasets'):
        check_dataset_paths(cfg)


def _cfg(root, demo_data=None):
    loader = dict(dataset=dict(type='CocoDataset', data_root=str(root),
                               ann_file='annotations/train.json'))
    cfg = dict(data_root=str(root), train_dataloader=loader,
               val_dataloader=dict(dataset=dict(
                   loader['dataset'], ann_file='annotations/val.json')))
    if demo_data is not None:
        cfg['demo_data'] = demo_data
    return Config(cfg)


def test_prepare_datasets_generates_the_demo_data_then_checks(tmp_path):
    root = tmp_path / 'demo'
    with pytest.raises(FileNotFoundError, match=re.escape(str(root))):
        prepare_datasets(_cfg(root), splits=('train', 'val'))
    assert not root.exists()  # no demo_data: nothing generated
    prepare_datasets(_cfg(root, dict(num_train=2, num_val=1,
                                     img_size=(32, 32))),
                     splits=('train', 'val'))
    train = json.loads((root / 'annotations' / 'train.json').read_text())
    val = json.loads((root / 'annotations' / 'val.json').read_text())
    assert [i['file_name'] for i in train['images']] == ['000000.png',
                                                          '000001.png']
    assert len(val['images']) == 1
    assert sorted(p.name for p in (root / 'train').iterdir()) == \
        ['000000.png', '000001.png']


def test_prepare_datasets_checks_only_the_given_splits(tmp_path):
    (tmp_path / 'annotations').mkdir()
    (tmp_path / 'annotations' / 'train.json').write_text('{}')
    cfg = _cfg(tmp_path)
    prepare_datasets(cfg, splits=('train', ))  # val is not read
    with pytest.raises(FileNotFoundError) as info:
        prepare_datasets(cfg, splits=('train', 'val'))
    assert str(tmp_path / 'annotations' / 'val.json') in str(info.value)
    assert 'train.json' not in str(info.value)
