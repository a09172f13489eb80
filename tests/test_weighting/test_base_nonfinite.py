"""BaseWeighting.step's non-finite counting (per value or per rank)."""
import math

import pytest

from mmdet_alwa.weighting import ALWA


def test_counts_nonfinite_values():
    rule = ALWA(interval=2)
    rule.step(dict(cls=math.nan, reg=1.0))
    rule.step(dict(cls=1.0, reg=math.inf))
    assert rule.num_nonfinite == dict(cls=1, reg=1)


def test_counts_ranks_given_by_the_glue():
    """Under DDP the glue passes the finite mean and how many ranks were
    not finite: a NaN on one of two ranks is counted though the mean is
    finite."""
    rule = ALWA(interval=2)
    rule.step(dict(cls=0.7, reg=0.3), nonfinite=dict(cls=1, reg=0))
    rule.step(dict(cls=math.nan, reg=0.3), nonfinite=dict(cls=2, reg=0))
    assert rule.num_nonfinite == dict(cls=3, reg=0)
    assert rule.log_scalars()['nonfinite_cls'] == 3.0
    with pytest.raises(ValueError, match='nonfinite'):
        rule.step(dict(cls=1.0, reg=1.0), nonfinite=dict(cls=0))
