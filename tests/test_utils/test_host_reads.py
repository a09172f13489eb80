"""``count_host_reads`` on hand-written modules: one inside the counted
package root, one outside; every read below is written out by hand, so the
expected counts and lines are those of the source."""

import pytest
import torch

from _helpers import load_tool
from mmdet_alwa.utils.host_reads import READ_METHODS, count_host_reads

INSIDE = '''\
import torch


def reads_each_kind(t):
    t[0].item()                     # line 5
    t.tolist()                      # line 6
    float(t[0])                     # line 7
    bool(t[0] > 0)                  # line 8
    int(t[1])                       # line 9
    [0, 1, 2][t[1].long()]          # line 10: __index__
    t.nonzero()                     # line 11
    torch.nonzero(t)                # line 12
    t.cpu()                         # line 13
    t.numpy()                       # line 14
    if (t > 0).any():               # line 15: the bool is the read
        pass
    return '{:.1f}'.format(t[0])    # line 17: torch reads via item, once


def no_reads(t):
    return (t * 2).sum().sqrt(), torch.where(t > 0, t, 0.0)


def calls_outside(t, fn):
    return fn(t)                    # the read is made by fn's module
'''

OUTSIDE = '''\
def read(t):
    return t.sum().item()


def call_inside(fn, t):
    return fn(t)
'''


def _module(path, name, source):
    path.write_text(source)
    return load_tool(str(path), name)


@pytest.fixture
def modules(tmp_path):
    pkg = tmp_path / 'pkg'
    pkg.mkdir()
    inside = _module(pkg / 'inside.py', '_hr_inside', INSIDE)
    outside = _module(tmp_path / 'outside.py', '_hr_outside', OUTSIDE)
    return str(pkg), inside, outside


def test_each_kind_of_read_is_counted_at_its_line(modules):
    root, inside, outside = modules
    t = torch.tensor([1.5, 2.0])
    with count_host_reads(root) as reads:
        assert inside.reads_each_kind(t) == '1.5'
    sites = {site.split(':', 1)[1]: n for site, n in reads.sites.items()}
    assert sites == {
        '5 (item)': 1, '6 (tolist)': 1, '7 (__float__)': 1,
        '8 (__bool__)': 1, '9 (__int__)': 1, '10 (__index__)': 1,
        '11 (nonzero)': 1, '12 (torch.nonzero)': 1, '13 (cpu)': 1,
        '14 (numpy)': 1, '15 (__bool__)': 1, '17 (item)': 1}
    assert reads.total == 12
    assert all(site.startswith('pkg/inside.py:') for site in reads.sites)
    assert 'pkg/inside.py:17 (item)' in reads.report()


def test_only_reads_made_from_the_package_count(modules):
    root, inside, outside = modules
    t = torch.tensor([1.5, 2.0])
    with count_host_reads(root) as reads:
        inside.no_reads(t)
        outside.read(t)                           # outside: not counted
        inside.calls_outside(t, outside.read)     # made outside: not counted
        outside.call_inside(inside.reads_each_kind, t)  # inside: 12
        t[0].item()                               # this test: not counted
    assert reads.total == 12
    with count_host_reads(root) as reads:
        inside.no_reads(t)
    assert reads.total == 0 and reads.report() == '(no reads)'


def test_pause_and_reset(modules):
    root, inside, _ = modules
    t = torch.tensor([1.5, 2.0])
    with count_host_reads(root) as reads:
        reads.enabled = False
        inside.reads_each_kind(t)
        assert reads.total == 0
        reads.enabled = True
        t[0].item()
        inside.reads_each_kind(t)
        assert reads.total == 12
        reads.reset()
        assert reads.total == 0


def test_unwrapped_on_exit_also_after_an_error(modules):
    root, inside, _ = modules
    before = {name: getattr(torch.Tensor, name) for name in READ_METHODS}
    nonzero = torch.nonzero
    with pytest.raises(KeyError):
        with count_host_reads(root) as reads:
            assert torch.Tensor.item is not before['item']
            raise KeyError('boom')
    assert {name: getattr(torch.Tensor, name)
            for name in READ_METHODS} == before
    assert torch.nonzero is nonzero
    inside.reads_each_kind(torch.tensor([1.5, 2.0]))
    assert reads.total == 0  # no longer counting
    with count_host_reads(root):
        with pytest.raises(RuntimeError, match='not reentrant'):
            with count_host_reads(root):
                pass
    assert torch.Tensor.item is before['item']


def test_default_root_is_the_package():
    from mmdet_alwa.engine.hooks.loss_weighting import reduce_finite_mean
    with count_host_reads() as reads:
        reduced = reduce_finite_mean([torch.tensor(2.0), 3.0],
                                     torch.device('cpu'))
        torch.tensor(1.0).item()  # this test's own read
    assert reduced.mean == [2.0, 3.0]
    (site, n), = reads.sites.items()
    assert n == 1 and site.startswith(
        'mmdet_alwa/engine/hooks/loss_weighting/reduce.py:')
    assert site.endswith('(tolist)')
    assert reads.report().split() == ['1', *site.split()]
