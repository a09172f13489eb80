"""``RichProgressHook``: a compact live progress display of a run (rich).

One line for training (epoch, iteration, smoothed loss, the balancing hooks'
α, elapsed time and ETA) and one for validation, instead of mmengine's log
lines; meant for a console whose log output is quieted (``tools/demo.py``),
the text log in the work dir keeps every line. It only reads what the
message hub already holds, so it adds no computation.
"""
import datetime
import re
import sys
from typing import Dict, Optional

from mmengine import dist
from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress,
                           TextColumn, TimeElapsedColumn, TimeRemainingColumn)

from mmdet.registry import HOOKS
from mmdet_alwa.weighting.validation import check_int

#: message-hub keys shown as α: the weight of each balancing hook
ALPHA_KEY = re.compile(r'^train/(.+)/alpha$')


@HOOKS.register_module()
class RichProgressHook(Hook):
    """Show training and validation progress as two rich progress bars.

    The training line shows ``epoch e/E``, the iteration (of all epochs), the
    loss averaged over the last ``window`` iterations, ``α`` of every
    balancing hook that logs one (``train/<name>/alpha``, e.g. ALWA),
    elapsed time and the remaining time at the current speed; the
    validation line ends with bbox mAP and mAP@0.5. Only rank 0 shows
    anything. On a console that is not a terminal (a pipe, a CI log) the bars
    cannot redraw, so the training line is printed at every tenth of the run.

    Args:
        window (int): iterations the shown loss is averaged over.
        console (rich.console.Console, optional): where to draw; default:
            a console on the stdout of the time the run starts.
        redirect_stdout (bool): print what others print to stdout while the
            display is live above it (rich's default); False leaves stdout
            alone (for a caller that redirects it, e.g. into the log).

    Note:
        Priority ``LOW`` (70): after ``LossWeightingHook`` (``NORMAL``) has
        logged this iteration's α. mmengine calls ``after_run`` only when a
        run ends normally: a tool that catches errors calls :meth:`close`.
    """

    priority = 'LOW'

    def __init__(self, window: int = 10, console: Optional[Console] = None,
                 redirect_stdout: bool = True) -> None:
        self.window = check_int('window', window)
        self.console = console
        self.redirect_stdout = bool(redirect_stdout)
        self._progress: Optional[Progress] = None
        self._train_task = self._val_task = None

    def _columns(self):
        return (TextColumn('{task.description:<5}'), BarColumn(bar_width=30),
                MofNCompleteColumn(), TextColumn('{task.fields[info]}'),
                TimeElapsedColumn(), TextColumn('ETA'),
                TimeRemainingColumn())

    def before_run(self, runner) -> None:
        if dist.get_rank() != 0:
            return
        console = self.console or Console(file=sys.stdout)
        self._progress = Progress(*self._columns(), console=console,
                                  redirect_stdout=self.redirect_stdout)
        self._progress.start()

    def before_train(self, runner) -> None:
        if self._progress is not None:
            self._train_task = self._progress.add_task(
                'train', total=runner.max_iters, completed=runner.iter,
                info='')

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if self._progress is None:
            return
        done = runner.iter + 1
        self._progress.update(self._train_task, completed=done,
                              info=self._train_info(runner))
        total = runner.max_iters
        if not self._progress.console.is_terminal and \
                10 * done // total > 10 * (done - 1) // total:
            self._print_line(self._progress.tasks[self._train_task])

    def _print_line(self, task) -> None:
        def clock(seconds):
            return '-:--:--' if seconds is None else str(
                datetime.timedelta(seconds=int(seconds)))

        self._progress.console.print(
            f'{task.description:<5} {task.completed}/{task.total}  '
            f'{task.fields["info"]}  {clock(task.elapsed)} '
            f'ETA {clock(task.time_remaining)}', highlight=False)

    def _train_info(self, runner) -> str:
        hub = runner.message_hub
        parts = []
        if isinstance(runner.train_loop, EpochBasedTrainLoop):
            parts.append(f'epoch {runner.epoch + 1}/{runner.max_epochs}')
        if 'train/loss' in hub.log_scalars:
            loss = hub.get_scalar('train/loss').mean(self.window)
            parts.append(f'loss {loss:.3f}')
        for key, name in self._alpha_keys(hub.log_scalars).items():
            parts.append(f'α({name}) {hub.get_scalar(key).current():.3f}')
        return '  '.join(parts)

    @staticmethod
    def _alpha_keys(scalars) -> Dict[str, str]:
        return {k: m.group(1) for k in scalars
                if (m := ALPHA_KEY.match(k)) is not None}

    def before_val_epoch(self, runner) -> None:
        if self._progress is None:
            return
        self._val_task = self._progress.add_task(
            'val', total=len(runner.val_dataloader), info='')

    def after_val_iter(self, runner, batch_idx: int, data_batch=None,
                       outputs=None) -> None:
        if self._progress is not None and self._val_task is not None:
            self._progress.update(self._val_task, completed=batch_idx + 1)

    def after_val_epoch(self, runner, metrics=None) -> None:
        if self._progress is None or self._val_task is None:
            return
        info = '  '.join(f'{k.rsplit("/", 1)[-1]} {v:.3f}'
                         for k, v in (metrics or {}).items()
                         if k.endswith(('bbox_mAP', 'bbox_mAP_50')))
        self._progress.update(self._val_task, info=info)
        self._val_task = None

    def after_run(self, runner) -> None:
        self.close()

    def close(self) -> None:
        """Stop the display."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
