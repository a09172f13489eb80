"""One module of argument checks (mmdet_alwa/weighting/validation.py), used
by the rules and by the mmdet glue alike: the same message for the same
mistake everywhere."""
import ast
import math
import os
import os.path as osp
import re

import pytest

from _helpers import REPO_ROOT
from mmdet_alwa.weighting.validation import (check_int, check_positive,
                                             check_range)

PACKAGE = osp.join(REPO_ROOT, 'mmdet_alwa')


def test_checks_return_the_value_or_name_the_argument():
    assert check_int('n', 3) == 3
    assert check_int('n', 2, minimum=2) == 2
    assert check_positive('lr', 1) == 1.0 and check_range('p', 1, 0, 1) == 1.0
    for bad in (0, True, 1.0, '1'):
        with pytest.raises(ValueError,
                           match=re.escape(f'n must be an integer >= 1, '
                                           f'got {bad!r}')):
            check_int('n', bad)
    for bad in (0, -1.0, math.inf, math.nan, False):
        with pytest.raises(ValueError, match='lr must be a finite number > 0'):
            check_positive('lr', bad)
    with pytest.raises(ValueError, match=re.escape('p must be in [0, 1), '
                                                   'got 1')):
        check_range('p', 1, 0, 1, high_inclusive=False)


def test_the_module_imports_only_math():
    tree = ast.parse(open(osp.join(PACKAGE, 'weighting',
                                   'validation.py')).read())
    imported = [a.name for n in ast.walk(tree)
                if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in n.names]
    assert imported == ['math']


def test_no_module_writes_the_int_check_inline():
    """``isinstance(v, bool) or not isinstance(v, int)`` is check_int's."""
    inline = re.compile(r'isinstance\((\w+), bool\)[\s\\]*or[\s\\]*'
                        r'not isinstance\(\1, int\)')
    hits = []
    for folder, dirs, files in os.walk(PACKAGE):
        dirs[:] = [d for d in dirs if d != '__pycache__']
        for name in files:
            path = osp.join(folder, name)
            if name.endswith('.py') and name != 'validation.py' and \
                    inline.search(open(path).read()):
                hits.append(osp.relpath(path, REPO_ROOT))
    assert not hits


def test_the_glue_raises_the_shared_messages():
    from mmdet_alwa.datasets.demo_data import generate_demo_dataset
    from mmdet_alwa.datasets.transforms.simclr import GaussianBlur, MultiView
    from mmdet_alwa.engine.hooks import RichProgressHook
    from mmdet_alwa.models.losses.ntxent_loss import NTXentLoss
    with pytest.raises(ValueError,
                       match=r'window must be an integer >= 1, got True'):
        RichProgressHook(window=True)
    with pytest.raises(ValueError, match=r'num_views must be an integer '
                       r'>= 1, got 0'):
        MultiView([], num_views=0)
    with pytest.raises(ValueError, match='kernel_size must be odd, got 4'):
        GaussianBlur(kernel_size=4)
    with pytest.raises(ValueError, match='temperature must be a finite '
                       'number > 0, got inf'):
        NTXentLoss(temperature=math.inf)
    with pytest.raises(ValueError, match=r'max_objects must be an integer '
                       r'>= 2, got 1'):
        generate_demo_dataset('unused', max_objects=1)
