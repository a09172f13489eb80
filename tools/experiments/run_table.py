"""Run the cells x seeds of a table of ``tools/experiments/tables.yaml``.

Every (cell, seed) trains in its own ``tools/train.py`` process into
``<work-dir>/<table>/<cell>/seed<k>/``, from the config the runner writes
there (``config.py``: the cell's config with its overrides, scale and seed,
so a run can be repeated exactly). A run that finished (``result.json`` with
``"status": "done"``) is skipped; one that was interrupted (a checkpoint but
no result) resumes from its last checkpoint (mmengine ``--resume``); a failed
one is skipped unless ``--retry-failed``. ``result.json`` records the status,
the final validation metrics, the return code and the wall time.

Examples::

    # the CPU study of docs/results.md, 3 seeds
    python tools/experiments/run_table.py study --scale cpu --seeds 3
    # Table 6 on a cluster: print one tools/dist_train.sh command per run
    python tools/experiments/run_table.py table6 --print-commands
    python tools/experiments/run_table.py table6 --print-commands \\
        --launcher slurm --partition gpu
    # the machinery end-to-end on the built-in demo data, on a CPU
    python tools/experiments/run_table.py table1 --scale tiny --seeds 1 \\
        --cells 'w1.00_1.00-*' 'w0.25_0.50-*'
"""
import argparse
import warnings
import fnmatch
import json
import os
import os.path as osp
import re
import shlex
import subprocess
import sys
import time
from typing import Dict, List, Optional

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
# setuptools' notice about mmengine's use of pkg_resources is not for users
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
from table_spec import (REPO_ROOT, TABLES_FILE, Cell, Table,  # noqa: E402
                        build_cell_config, load_table)

RESULT_FILE = 'result.json'
LOG_TAIL = 30
_NONFINITE = re.compile(r'non-?finite|\bnan\b', re.IGNORECASE)


def run_dir(work_root: str, table: Table, cell: Cell, seed: int) -> str:
    return osp.join(work_root, table.name, cell.key, f'seed{seed}')


def read_result(path: str) -> Optional[dict]:
    try:
        with open(osp.join(path, RESULT_FILE)) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def last_val_metrics(path: str, metric: str) -> Optional[Dict[str, float]]:
    """The last validation record of a run holding ``metric`` (all of its
    ``prefix/name`` keys), from mmengine's ``*/vis_data/scalars.json``."""
    import glob
    found = None
    for scalars in sorted(glob.glob(osp.join(path, '*', 'vis_data',
                                             'scalars.json'))):
        with open(scalars) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                rec = json.loads(line)
                if metric in rec:
                    found = {k: v for k, v in rec.items() if '/' in k}
                    found['step'] = rec.get('step')
    return found


def can_resume(path: str) -> bool:
    return osp.exists(osp.join(path, 'last_checkpoint'))


def select_cells(table: Table, patterns: Optional[List[str]]) -> List[Cell]:
    if not patterns:
        return list(table.cells)
    cells = [c for c in table.cells
             if any(fnmatch.fnmatchcase(c.key, p) for p in patterns)]
    if not cells:
        raise ValueError(f'--cells {patterns} match no cell of table '
                         f'{table.name}: {[c.key for c in table.cells]}')
    return cells


def write_config(table: Table, cell: Cell, scale: str, seed: int,
                 path: str, extra_options: Optional[dict]) -> str:
    cfg = build_cell_config(table, cell, scale, seed, path, extra_options)
    os.makedirs(path, exist_ok=True)
    config_file = osp.join(path, 'config.py')
    cfg.dump(config_file)
    return config_file


def train_command(config_file: str, path: str, resume: bool) -> List[str]:
    cmd = [sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'),
           config_file, '--work-dir', path]
    return cmd + ['--resume'] if resume else cmd


def cluster_command(args, table: Table, cell: Cell, seed: int,
                    config_file: str, path: str) -> str:
    gpus = args.gpus or table.gpus
    if args.launcher == 'slurm':
        job = f'{table.name}_{cell.key}_s{seed}'
        cmd = [f'GPUS={gpus}', 'tools/slurm_train.sh', args.partition, job,
               config_file, path]
    else:
        cmd = ['tools/dist_train.sh', config_file, str(gpus),
               '--work-dir', path]
    return ' '.join(shlex.quote(c) if '=' not in c else c for c in cmd) + \
        (' --resume' if can_resume(path) else '')


def run_one(table: Table, cell: Cell, seed: int, path: str, config_file: str,
            log=print) -> dict:
    """Train one (cell, seed) in a subprocess; write and return its
    result."""
    previous = read_result(path) or {}
    resume = can_resume(path)
    cmd = train_command(config_file, path, resume)
    env = dict(os.environ)
    env.setdefault('OMP_NUM_THREADS', '1')
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (REPO_ROOT, env.get('PYTHONPATH')) if p)
    start = time.time()
    with open(osp.join(path, 'train.log'), 'a') as out:
        out.write(f'$ {" ".join(shlex.quote(c) for c in cmd)}\n')
        out.flush()
        rc = subprocess.call(cmd, cwd=REPO_ROOT, env=env, stdout=out,
                             stderr=subprocess.STDOUT)
    wall = time.time() - start + float(previous.get('wall_s', 0.0))
    metrics = last_val_metrics(path, cell.metric) if rc == 0 else None
    result = dict(table=table.name, cell=cell.key, row=cell.row,
                  column=cell.column, seed=seed, config=cell.config,
                  returncode=rc, wall_s=round(wall, 1),
                  attempts=int(previous.get('attempts', 0)) + 1,
                  resumed=resume, command=cmd)
    if rc == 0 and metrics is not None:
        result.update(status='done', metrics=metrics)
    else:
        with open(osp.join(path, 'train.log')) as f:
            tail = f.readlines()[-LOG_TAIL:]
        text = ''.join(tail)
        result.update(
            status='failed', log_tail=text,
            reason=('no validation metric ' + cell.metric) if rc == 0
            else ('nan' if _NONFINITE.search(text) else f'exit code {rc}'))
    with open(osp.join(path, RESULT_FILE), 'w') as f:
        json.dump(result, f, indent=1)
    return result


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Run the cells x seeds of a table of experiments',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('Examples::', 1)[1])
    parser.add_argument('table', help='a table of the tables file')
    parser.add_argument('--scale', default='paper',
                        help='paper, or a profile of the table (tiny, cpu)')
    parser.add_argument('--seeds', type=int, default=3,
                        help='seeds 0 .. N-1 (default 3)')
    parser.add_argument('--first-seed', type=int, default=0)
    parser.add_argument('--cells', nargs='+', metavar='PATTERN',
                        help='only the cells whose key matches (fnmatch)')
    parser.add_argument('--work-dir', default=osp.join(REPO_ROOT,
                                                       'work_dirs'),
                        help='root of <table>/<cell>/seed<k>/')
    parser.add_argument('--tables', default=TABLES_FILE,
                        help='the tables file (YAML)')
    parser.add_argument('--cfg-options', type=json.loads, default=None,
                        metavar='JSON', help='overrides for every run, a '
                        'JSON object of dotted keys, e.g. '
                        '\'{"train_cfg.max_iters": 10}\'')
    parser.add_argument('--retry-failed', action='store_true',
                        help='run failed runs again (resuming them)')
    parser.add_argument('--print-commands', action='store_true',
                        help='write the configs and print one cluster '
                        'command per run instead of training')
    parser.add_argument('--launcher', choices=['dist', 'slurm'],
                        default='dist', help='for --print-commands')
    parser.add_argument('--gpus', type=int, default=None,
                        help='processes per run for --print-commands '
                        '(default: the table\'s "gpus")')
    parser.add_argument('--partition', default='PARTITION',
                        help='slurm partition for --print-commands')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        table = load_table(args.table, args.tables, args.scale)
        cells = select_cells(table, args.cells)
        if args.scale not in table.scales:
            raise ValueError(f'table {table.name} runs at the scales '
                             f'{table.scales}, not {args.scale!r}')
    except ValueError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    if args.cfg_options is not None and not isinstance(args.cfg_options,
                                                       dict):
        print('error: --cfg-options must be a JSON object', file=sys.stderr)
        return 2
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    runs = [(c, s, run_dir(args.work_dir, table, c, s))
            for c in cells for s in seeds]
    todo, done, failed = [], 0, 0
    for cell, seed, path in runs:
        status = (read_result(path) or {}).get('status')
        if status == 'done':
            done += 1
        elif status == 'failed' and not args.retry_failed:
            failed += 1
        else:
            todo.append((cell, seed, path))
    if args.print_commands:
        for cell, seed, path in todo:
            config_file = write_config(table, cell, args.scale, seed, path,
                                       args.cfg_options)
            print(cluster_command(args, table, cell, seed, config_file,
                                  path))
        print(f'# {len(todo)} runs to do; {done} done, {failed} failed '
              f'(skipped)', file=sys.stderr)
        return 0

    from tqdm import tqdm
    print(f'table {table.name} at scale {args.scale}: {len(runs)} runs, '
          f'{done} done, {failed} failed (skipped), {len(todo)} to run',
          flush=True)
    bar = tqdm(total=len(todo), unit='run', dynamic_ncols=True)
    new_failures = 0
    for cell, seed, path in todo:
        bar.set_postfix_str(f'{cell.key} seed{seed}')
        config_file = write_config(table, cell, args.scale, seed, path,
                                   args.cfg_options)
        result = run_one(table, cell, seed, path, config_file)
        if result['status'] == 'done':
            value = result['metrics'][cell.metric] * table.metric_scale
            bar.write(f'{cell.key} seed{seed}: {cell.metric} = {value:.2f} '
                      f'({result["wall_s"]:.0f} s)')
        else:
            new_failures += 1
            bar.write(f'{cell.key} seed{seed}: FAILED ({result["reason"]}); '
                      f'see {osp.join(path, "train.log")}')
        bar.update(1)
    bar.close()
    return 1 if new_failures else 0


if __name__ == '__main__':
    sys.exit(main())
