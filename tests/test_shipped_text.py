"""What ships (the package, its configs and tools, the docs) names no path
of this checkout's surroundings and cites papers as a reader can find them:
by authors and title, not by a file or number of a local paper folder."""
import os
import os.path as osp
import re

from _helpers import REPO_ROOT

SHIPPED = ('mmdet_alwa', 'configs', 'tools', 'docs', 'README.md',
           'DEVELOPERS.md', 'model-index.yml', 'setup.py',
           '_mmdet_alwa_scope.py')
FORBIDDEN = re.compile(r'\.\./shared|/work/|shared/(papers|data)|'
                       r'\bpaper 00\d\b|\b00\d_[0-9a-f]{16}\.txt', re.I)


def _files():
    for name in SHIPPED:
        path = osp.join(REPO_ROOT, name)
        if osp.isfile(path):
            yield path
        for folder, dirs, files in os.walk(path):
            dirs[:] = [d for d in dirs if d != '__pycache__']
            yield from (osp.join(folder, f) for f in files
                        if f.endswith(('.py', '.md', '.yml', '.sh', '.txt')))


def test_no_path_outside_the_repository():
    files = list(_files())
    assert len(files) > 50
    hits = [f'{osp.relpath(path, REPO_ROOT)}:{i}: {line.strip()}'
            for path in files
            for i, line in enumerate(
                open(path, encoding='utf-8').read().splitlines(), 1)
            if FORBIDDEN.search(line)]
    assert not hits, '\n'.join(hits)
