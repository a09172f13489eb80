"""Logging of a rule: its scalars to the message hub (text log,
``vis_data/scalars.json``, TensorBoard) as ``train/<name>/<key>``, and one
line in the text log whenever its weights change."""
import math
from typing import Dict, Mapping, Optional

__all__ = ['RuleLog']


class RuleLog:
    """Log one hook's rule after each of its steps.

    Args:
        name (str): the hook's name (the scalars' prefix).
    """

    def __init__(self, name: str) -> None:
        self.prefix = f'train/{name}/'
        self.name = name
        self.last_weights: Optional[Dict[str, float]] = None

    def log(self, runner, rule, raw: Mapping[str, float],
            param_group: Optional[dict] = None) -> None:
        """``rule.log_scalars()``, the (reduced) raw losses, the lr of the
        rule's param group; a text line when the weights changed."""
        hub = runner.message_hub
        for key, value in rule.log_scalars().items():
            hub.update_scalar(self.prefix + key, value)
        for task, value in raw.items():
            if math.isfinite(value):
                hub.update_scalar(f'{self.prefix}raw_{task}', value)
        if param_group is not None:
            hub.update_scalar(self.prefix + 'lr', param_group['lr'])
        weights = rule.weights
        if weights != self.last_weights:
            if self.last_weights is not None:
                runner.logger.info(
                    f'{self.name}: weights after iter {runner.iter + 1}: ' +
                    ', '.join(f'{t}={w:.6g}' for t, w in weights.items()))
            self.last_weights = dict(weights)

    def reset(self, rule) -> None:
        """Take the rule's current weights as the last logged ones."""
        self.last_weights = dict(rule.weights)
