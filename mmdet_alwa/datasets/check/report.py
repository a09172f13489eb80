"""The report of a dataset check: findings, counts, box statistics, text."""
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Sequence, Tuple

import numpy as np

__all__ = ['ERROR', 'WARNING', 'INFO', 'Finding', 'CheckReport',
           'box_statistics', 'format_report']

ERROR, WARNING, INFO = 'error', 'warning', 'info'
SEVERITIES = (ERROR, WARNING, INFO)


@dataclass
class Finding:
    severity: str  # 'error', 'warning' or 'info' (see rules.py)
    kind: str
    file: str      # the file to fix: XML file (VOC), json/image file (COCO)
    detail: str


@dataclass
class CheckReport:
    split: str
    datasets: List[str] = field(default_factory=list)
    num_images: int = 0        # listed in the annotation files
    num_used_images: int = 0   # left after the loader's filter_data
    num_boxes: int = 0         # of known classes, kept by the loader
    num_ignored: int = 0       # of those: VOC difficult / COCO iscrowd...
    class_counts: Dict[str, int] = field(default_factory=dict)
    unknown_classes: Dict[str, int] = field(default_factory=dict)
    findings: List[Finding] = field(default_factory=list)
    # (w, h) of every kept box with w > 0 and h > 0, for the statistics
    sizes: List[Tuple[float, float]] = field(default_factory=list)

    def errors(self, strict: bool = False) -> List[Finding]:
        """The findings that fail the check (``strict``: warnings too)."""
        failing = (ERROR, WARNING) if strict else (ERROR, )
        return [f for f in self.findings if f.severity in failing]

    def verdict(self) -> str:
        """'error', 'warning' or 'ok': the worst finding (info is ok)."""
        severities = {f.severity for f in self.findings}
        return next((s for s in (ERROR, WARNING) if s in severities), 'ok')

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop('sizes')
        out['box_stats'] = box_statistics(self.sizes)
        return out


def box_statistics(sizes: Sequence[Tuple[float, float]]) -> dict:
    """Percentiles (5, 25, 50, 75, 95) of box width, height, sqrt(area) and
    aspect ratio w/h."""
    if not len(sizes):
        return {}
    wh = np.asarray(sizes, dtype=np.float64)
    values = dict(width=wh[:, 0], height=wh[:, 1],
                  sqrt_area=np.sqrt(wh[:, 0] * wh[:, 1]),
                  aspect_w_h=wh[:, 0] / wh[:, 1])
    q = (5, 25, 50, 75, 95)
    return {k: dict(zip((f'p{p}' for p in q),
                        np.percentile(v, q).round(3).tolist()))
            for k, v in values.items()}


def format_report(report: CheckReport, max_list: int = 20,
                  strict: bool = False) -> str:
    """The human-readable summary printed by the tool."""
    lines = [f'split: {report.split}',
             'datasets: ' + ', '.join(report.datasets),
             f'images: {report.num_images} listed, {report.num_used_images} '
             f'left after the loader\'s filter   boxes of known classes: '
             f'{report.num_boxes} (ignored/difficult/crowd: '
             f'{report.num_ignored})', 'boxes per class:']
    width = max([len(c) for c in report.class_counts] + [5])
    lines += [f'  {c:<{width}} {n}' for c, n in report.class_counts.items()]
    if report.unknown_classes:
        lines.append('classes in the annotations that the config does not '
                     'know (dropped by the loader): ' + ', '.join(
                         f'{c} ({n})' for c, n in
                         sorted(report.unknown_classes.items())))
    stats = box_statistics(report.sizes)
    if stats:
        lines.append('box statistics (p5 / p25 / median / p75 / p95):')
        lines += [f'  {k:<10} ' + ' / '.join(f'{v:g}' for v in q.values())
                  for k, q in stats.items()]
    titles = {ERROR: 'ERRORS (break or poison training)',
              WARNING: 'WARNINGS (the loader drops or fixes these)',
              INFO: 'NOTES (kept as they are)'}
    for severity in SEVERITIES:
        found = [f for f in report.findings if f.severity == severity]
        if not found:
            continue
        kinds = Counter(f.kind for f in found)
        lines.append(f'{titles[severity]} ({len(found)}): ' + ', '.join(
            f'{k} {n}' for k, n in kinds.items()))
        for kind in kinds:
            of_kind = [f for f in found if f.kind == kind]
            for f in of_kind[:max_list]:
                lines.append(f'  [{kind}] {f.file}: {f.detail}')
            if len(of_kind) > max_list:
                lines.append(f'  [{kind}] ... {len(of_kind) - max_list} '
                             f'more (see report.json)')
    errors = report.errors(strict)
    lines.append(f'result: FAILED, {len(errors)} error(s)'
                 f'{" (--strict: warnings count)" if strict else ""}'
                 if errors else 'result: OK')
    return '\n'.join(lines)
