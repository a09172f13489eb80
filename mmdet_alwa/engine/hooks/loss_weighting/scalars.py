"""Logging of a rule: its scalars to the message hub (text log,
``vis_data/scalars.json``, TensorBoard) as ``train/<name>/<key>``, and one
line in the text log whenever its weights change; a warning, once, when
ALWA's α stays low (:class:`LowWeightWarning`)."""
import math
from typing import Dict, List, Mapping, Optional

from mmdet_alwa.weighting.validation import check_int, check_range

__all__ = ['RuleLog', 'LowWeightWarning']


class LowWeightWarning:
    """Warn once when a rule's α stays below ``threshold`` at the end of
    ``windows`` consecutive windows (ALWA, whose ``alpha_window()`` gives
    ``(windows so far, α)``; pure python, no device read).

    A low α down-weights the classification loss against the regression loss;
    on the RPN that starved the proposals of small objects (issue 19,
    docs/alwa.md, "Small objects").

    Args:
        name (str): the hook's name.
        loss_paths (dict): ``{task: [module paths]}`` of the hook's losses.
        threshold (float): α below this counts as low, in (0, 1].
        windows (int): consecutive low windows before the warning, >= 1.
    """

    def __init__(self, name: str, loss_paths: Mapping[str, List[str]],
                 threshold: float = 0.3, windows: int = 3) -> None:
        self.name = name
        self.loss_paths = {t: list(p) for t, p in loss_paths.items()}
        self.threshold = check_range('low_weight_warning.threshold',
                                     threshold, 0.0, 1.0,
                                     low_inclusive=False)
        self.windows = check_int('low_weight_warning.windows', windows)
        self.seen = 0  # windows count at the last check
        self.low = 0  # consecutive windows that ended with a low α
        self.warned = False

    def check(self, rule) -> Optional[str]:
        """The warning's text the first time the condition holds, else
        ``None``. Call after each step of the rule."""
        num_windows, alpha = rule.alpha_window()
        if num_windows == self.seen:
            return None
        self.seen = num_windows
        self.low = self.low + 1 if alpha < self.threshold else 0
        if self.warned or self.low < self.windows:
            return None
        self.warned = True
        cls = ', '.join(self.loss_paths.get('cls', []))
        reg = ', '.join(self.loss_paths.get('reg', []))
        return (f'{self.name}: the cls loss ({cls}) has been down-weighted '
                f'to alpha = {alpha:.4g} times the reg loss ({reg}) for '
                f'{self.low} consecutive windows (alpha < {self.threshold:g}).'
                f' On the RPN this can starve the proposals of small objects'
                f'; check their per-class AP and recall, or bound alpha '
                f'with rule=dict(alpha_min=0.5). See docs/alwa.md, '
                f'"Small objects".')


class RuleLog:
    """Log one hook's rule after each of its steps.

    Args:
        name (str): the hook's name (the scalars' prefix).
        low_weight (LowWeightWarning, optional): warns once in the text log
            when the rule's α stays low.
    """

    def __init__(self, name: str,
                 low_weight: Optional[LowWeightWarning] = None) -> None:
        self.prefix = f'train/{name}/'
        self.name = name
        self.low_weight = low_weight
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
        if self.low_weight is not None:
            message = self.low_weight.check(rule)
            if message is not None:
                runner.logger.warning(message)

    def reset(self, rule) -> None:
        """Take the rule's current weights as the last logged ones."""
        self.last_weights = dict(rule.weights)
