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


# Markdown links: [text](target) and ![alt](target); reference-style links
# are not used in the docs.
LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)\)')
FENCE = re.compile(r'^(```|~~~)')


def _headings(text):
    """GitHub's anchors of a Markdown file's headings: lower case, every
    character but letters, digits, spaces, '-' and '_' dropped, spaces to
    '-', a repeated anchor suffixed -1, -2, ..."""
    seen, anchors, fenced = {}, set(), False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        m = None if fenced else re.match(r'#{1,6} +(.*?) *#* *$', line)
        if not m:
            continue
        slug = re.sub(r'[^\w\- ]', '', m.group(1).lower()).replace(' ', '-')
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f'{slug}-{n}')
    return anchors


def _links(text):
    fenced = False
    for i, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            for m in LINK.finditer(re.sub(r'`[^`]*`', '', line)):
                yield i, m.group(1)


def test_github_anchor_rule():
    # worked by hand from GitHub's rendering of these headings
    text = ('# Checkpoints under torch >= 2.6\n'
            "## DWA — Dynamic Weight Average (Liu et al., CVPR 2019), "
            "`type='DWA'`\n## Notes\n## Notes\n```\n# not a heading\n```\n")
    assert _headings(text) == {
        'checkpoints-under-torch--26',
        'dwa--dynamic-weight-average-liu-et-al-cvpr-2019-typedwa',
        'notes', 'notes-1'}


def test_relative_links_resolve():
    """Every relative link of README.md, DEVELOPERS.md, CHANGELOG.md and
    docs/*.md names a file of the repository and, with '#anchor' into a
    Markdown file, one of its headings."""
    pages = ['README.md', 'DEVELOPERS.md', 'CHANGELOG.md'] + [
        osp.join('docs', f) for f in sorted(os.listdir(
            osp.join(REPO_ROOT, 'docs'))) if f.endswith('.md')]
    checked, broken = 0, []
    for page in pages:
        path = osp.join(REPO_ROOT, page)
        for line, target in _links(open(path, encoding='utf-8').read()):
            if re.match(r'[a-z]+:', target):  # http(s):, mailto:
                continue
            checked += 1
            file, _, anchor = target.partition('#')
            dest = osp.normpath(osp.join(osp.dirname(path), file)) \
                if file else path
            if not osp.exists(dest):
                broken.append(f'{page}:{line}: {target} (no such file)')
            elif anchor and dest.endswith('.md') and anchor not in \
                    _headings(open(dest, encoding='utf-8').read()):
                broken.append(f'{page}:{line}: {target} (no such heading)')
    assert checked > 30
    assert not broken, '\n'.join(broken)
