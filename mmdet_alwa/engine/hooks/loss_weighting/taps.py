"""Loss taps: the forward hooks through which a rule sees and weights the
raw losses of a detector.

One forward hook per loss module keeps the module's output (a task's raw
loss of an iteration is the sum over all calls: dense heads call their
losses once per FPN level) and returns the weighted output, so the weighted
loss is what mmdet sums, logs and back-propagates. The taps only produce:
the iteration's raw totals (:meth:`LossTaps.raw_totals`, attached to the
graph; :meth:`LossTaps.stop`, detached) are read by the owning hook, which
decides what to do with them (signal providers, same-iteration weights,
the Gramian of gradient aggregation, the regularizer); nothing calls back.

Rules with ``same_iteration=True`` (Guided Loss, the scalarizers, gradient
aggregation) need this iteration's raw losses before any loss is weighted:
their loss taps pass the outputs through, and the hook, once every loss
exists, has :meth:`LossTaps.weight_in_dict` replace each output in the
returned loss dict by its weighted value. An output the dict
holds only in a derived form (Cascade R-CNN multiplies each stage's losses
by a stage weight) cannot be replaced; the gradient flowing back through it
is scaled by the task's weight instead (the tap's output passes an identity
whose backward multiplies by a factor set once the weight is known), so
back-propagation is
exact (``d total / d raw = weight x stage weight``) while the logged value
of that loss stays unweighted. Same-iteration rules weight by a plain factor
(the weights ``rule.prepare`` returns), which may be a 0-d device tensor: it
is applied without reading it (no host sync), exactly as the python float
would be (cast to the loss's dtype; float16/bfloat16 losses are multiplied
in float32, as torch does with a python scalar).

A loss module is weighted by one hook at most: :meth:`LossTaps.resolve`
gets the modules other hooks weight (the owning hook collects them over
``runner.hooks``) and a module among them is a ``ValueError``.
"""
from typing import Dict, List, Mapping, Optional, Union

import torch
from torch import nn

__all__ = ['LossTaps', 'loss_module_names']

def loss_module_names(model: nn.Module) -> List[str]:
    """The dotted names of the modules of ``model`` that look like losses
    (for error messages)."""
    return [n for n, m in model.named_modules()
            if n and (type(m).__name__.endswith('Loss')
                      or n.rsplit('.', 1)[-1].startswith('loss'))]


def scale(x: torch.Tensor, factor: Union[float, torch.Tensor]
          ) -> torch.Tensor:
    """``x * factor`` for a python or a 0-d tensor ``factor``, with the
    same result either way: a tensor is cast to ``x``'s dtype (a python
    scalar is), float16/bfloat16 are multiplied in float32 (torch's
    ``opmath`` for a scalar), and nothing is read from the device."""
    if not isinstance(factor, torch.Tensor):
        return x * factor
    factor = factor.to(device=x.device)
    if x.dtype in (torch.float16, torch.bfloat16):
        return (x.float() * factor.float()).to(x.dtype)
    return x * factor.to(x.dtype)


def _total(outputs: List[torch.Tensor]) -> torch.Tensor:
    """The float32 (or wider) sum of a task's loss outputs."""
    if all(o.dim() == 0 for o in outputs) and len(
            {o.dtype for o in outputs}) == 1:
        return torch.stack(outputs).float().sum()
    return torch.stack([o.sum().float() for o in outputs]).sum()


class _Factor:
    """A gradient factor set after the forward (see :class:`_LateScale`):
    a python float or a 0-d device tensor."""
    value: Union[float, torch.Tensor] = 1.0


class _LateScale(torch.autograd.Function):
    """Identity in the forward; in the backward the gradient is multiplied
    by ``factor.value`` as it is *then*."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, factor: _Factor) -> torch.Tensor:
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return scale(grad, ctx.factor.value), None


class LossTaps:
    """The forward hooks of one :class:`LossWeightingHook`.

    Args:
        name (str): the owning hook's name (error messages, dict keys).
        rule: the hook's rule (``weight_loss``, ``same_iteration``).
        loss_paths (dict): ``{task: [dotted module path, ...]}``.
    """

    def __init__(self, name: str, rule,
                 loss_paths: Mapping[str, List[str]]) -> None:
        self.name = name
        self.rule = rule
        self.loss_paths = {t: list(p) for t, p in loss_paths.items()}
        self.outputs: Dict[str, List[torch.Tensor]] = {
            t: [] for t in rule.tasks}
        self.modules: Dict[str, List[nn.Module]] = {}
        self.active = False
        self._handles: List = []
        self._factors: Dict[int, _Factor] = {}
        # (number of outputs, totals) of the last raw_totals() call
        self._totals: Optional[tuple] = None

    def resolve(self, model: nn.Module,
                claimed: Optional[Mapping[nn.Module, str]] = None
                ) -> Dict[str, List[nn.Module]]:
        """``{task: [loss module, ...]}`` on ``model``; ``ValueError`` for a
        path that is not a module, a module named twice or one of
        ``claimed`` (``{module: name of the hook that weights it}``)."""
        claimed = claimed or {}
        resolved, seen = {}, {}
        for task, paths in self.loss_paths.items():
            resolved[task] = []
            for path in paths:
                try:
                    module = model.get_submodule(path)
                except AttributeError:
                    raise ValueError(
                        f'LossWeightingHook({self.name}): losses[{task!r}] = '
                        f'{path!r} is not a module of {type(model).__name__}; '
                        f'its loss modules are: {loss_module_names(model)}'
                    ) from None
                if id(module) in seen:
                    raise ValueError(f'loss module {path!r} is named twice '
                                     f'(also as {seen[id(module)]!r})')
                owner = claimed.get(module)
                if owner is not None and owner != self.name:
                    raise ValueError(
                        f'LossWeightingHook({self.name}): loss module '
                        f'{path!r} is already weighted by '
                        f'LossWeightingHook({owner}); a loss module can be '
                        f'weighted by one hook only')
                seen[id(module)] = path
                resolved[task].append(module)
        return resolved

    def attach(self, model: nn.Module,
               claimed: Optional[Mapping[nn.Module, str]] = None
               ) -> Dict[str, List[nn.Module]]:
        """Hook the loss modules (:meth:`resolve`); returns them."""
        self.modules = self.resolve(model, claimed)
        for task, modules in self.modules.items():
            for module in modules:
                self._handles.append(module.register_forward_hook(
                    self._make_loss_hook(task)))
        return self.modules

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.modules = {}

    # ------------------------------------------------------------ iteration
    def start(self) -> None:
        """Forget the previous iteration and weight the coming one."""
        for outputs in self.outputs.values():
            outputs.clear()
        self._factors.clear()
        self._totals = None
        self.active = True

    def stop(self) -> Dict[str, Optional[torch.Tensor]]:
        """Stop weighting; return the iteration's detached raw totals
        (``None`` for a task whose loss modules did not run)."""
        self.active = False
        raw = {t: None if r is None else r.detach()
               for t, r in self.raw_totals().items()}
        for outputs in self.outputs.values():
            outputs.clear()
        self._factors.clear()
        self._totals = None
        return raw

    def raw_totals(self) -> Dict[str, Optional[torch.Tensor]]:
        """Each task's raw loss so far (attached to the graph).

        Computed once per set of outputs: the detector hook's totals are
        those :meth:`stop` returns unless a loss module ran since (a second
        forward in the iteration). The 0-d outputs of a task (every mmdet
        loss with a reduction) are summed with one ``stack`` and one
        ``sum``, the very numbers of a sum of each output's ``sum()``, in
        two kernels instead of one or two per output."""
        count = sum(len(outs) for outs in self.outputs.values())
        if self._totals is not None and self._totals[0] == count:
            return self._totals[1]
        totals = {t: _total(outs) if outs else None
                  for t, outs in self.outputs.items()}
        self._totals = (count, totals)
        return totals

    def _make_loss_hook(self, task: str):

        def hook(module, args, output):
            if not self.active:
                return None
            if not isinstance(output, torch.Tensor):
                raise TypeError(
                    f'LossWeightingHook({self.name}): the loss module of task '
                    f'{task!r} ({type(module).__name__}) returned '
                    f'{type(output).__name__}, expected a tensor')
            if self.rule.same_iteration:  # weighted in the detector hook
                factor = _Factor()
                output = _LateScale.apply(output, factor)
                self._factors[id(output)] = factor
                self.outputs[task].append(output)
                return output
            self.outputs[task].append(output)
            return self.rule.weight_loss(task, output)

        return hook

    def weight_in_dict(self, losses: dict,
                       weights: Optional[Mapping[str, Union[
                           float, torch.Tensor]]] = None) -> None:
        """Replace the raw outputs in ``losses`` (values or items of list
        values) by their weighted values; scale the gradient of outputs held
        only in a derived form (see the module docstring). ``weights``:
        plain factors per task, python floats or 0-d device tensors
        (default: ``rule.weights``)."""
        if weights is None:
            weights = self.rule.weights
        task_of = {id(o): t for t, outs in self.outputs.items() for o in outs}
        found = set()

        def weigh(value):
            task = task_of.get(id(value))
            if task is None:
                return value
            found.add(id(value))
            return scale(value, weights[task])

        for key, value in losses.items():
            if isinstance(value, torch.Tensor):
                losses[key] = weigh(value)
            elif isinstance(value, (list, tuple)):
                losses[key] = type(value)(weigh(v) for v in value)
        for task, outs in self.outputs.items():
            for out in outs:
                if id(out) not in found:
                    self._factors[id(out)].value = weights[task]
