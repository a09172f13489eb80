"""A rule's state in checkpoints, as mmengine's ``EMAHook`` treats its
averaged weights: saved in every checkpoint under
``checkpoint['mmdet_alwa'][name]``; restored when the run *resumes*
(``runner._resume``: ``resume=True`` / ``--resume``); ignored when a run
starts from ``load_from`` without resuming (a fine-tune: new data, new
schedule), unless ``restore_on_load_from=True``. The log says which
happened. A checkpoint without the state (trained without the hook, or by
an older version) still loads: the rule starts fresh, with a warning on
resume."""
import logging

from mmengine.logging import print_log

__all__ = ['CHECKPOINT_KEY', 'RuleCheckpoint']

#: checkpoint[CHECKPOINT_KEY][name] holds a hook's rule state
CHECKPOINT_KEY = 'mmdet_alwa'


class RuleCheckpoint:
    """Save and restore one hook's rule state.

    Args:
        name (str): the hook's name (the key of the state).
        restore_on_load_from (bool): restore the state also when the
            checkpoint is loaded by ``load_from`` without resume.
    """

    def __init__(self, name: str, restore_on_load_from: bool = False) -> None:
        if not isinstance(restore_on_load_from, bool):
            raise ValueError(f'restore_on_load_from must be a bool, got '
                             f'{restore_on_load_from!r}')
        self.name = name
        self.restore_on_load_from = restore_on_load_from

    def save(self, rule, checkpoint: dict) -> None:
        checkpoint.setdefault(CHECKPOINT_KEY, {})[self.name] = \
            rule.state_dict()

    def load(self, runner, rule, checkpoint: dict) -> bool:
        """Restore ``rule`` from ``checkpoint`` if the policy says so;
        return whether it was restored."""
        state = checkpoint.get(CHECKPOINT_KEY, {}).get(self.name)
        resume = bool(getattr(runner, '_resume', False))
        who = f'LossWeightingHook({self.name})'
        if not (resume or self.restore_on_load_from):
            print_log(f'{who}: load_from without resume (a fine-tune): the '
                      f'rule starts fresh (restore_on_load_from=True '
                      f'restores its state)', logger='current')
            return False
        if state is None:
            print_log(f'{who}: the checkpoint has no state for '
                      f'{self.name!r} (trained without it, or by an older '
                      f'version); the rule starts fresh', logger='current',
                      level=logging.WARNING)
            return False
        rule.load_state_dict(state)
        how = 'resume' if resume else 'load_from, restore_on_load_from=True'
        print_log(f'{who}: rule state restored from the checkpoint ({how}, '
                  f'after {rule.num_steps} steps)', logger='current')
        return True
