"""The shared representation of gradient aggregation, and its Gramian.

A :class:`RepresentationTap` keeps, during a training iteration, the
outputs of one module of the detector (by default ``neck``: every FPN
level), through a forward hook. :meth:`RepresentationTap.gramian` gives
the Gramian of the task losses' Jacobian with respect to those outputs
(:func:`mmdet_alwa.weighting.representation_gramian`, one backward per task
through the heads), summed over the DDP ranks and divided by :math:`W^2`:
the Gramian of the global batch, identical on every rank
(:mod:`mmdet_alwa.weighting.gramian`).

Under float16 AMP the losses are multiplied by the optim wrapper's loss
scale before differentiating (as the optim wrapper does), and the Gramian
divided by its square: small gradients do not underflow; an overflow gives
a non-finite Gramian, which the rule does not use (``num_fallbacks``).
"""
from typing import Any, List, Mapping, Optional, Sequence

import torch
from mmengine import dist
from torch import nn

from mmdet_alwa.weighting import representation_gramian

__all__ = ['RepresentationTap']


def _tensors(output: Any) -> List[torch.Tensor]:
    """The tensors of a module output (a tensor, or tuples/lists/dicts of
    them, as necks return)."""
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, Mapping):
        output = list(output.values())
    if isinstance(output, (list, tuple)):
        return [t for o in output for t in _tensors(o)]
    return []


class RepresentationTap:
    """The outputs of the module at ``path`` during training iterations.

    Args:
        name (str): the owning hook's name (error messages).
        path (str): the dotted module path on the unwrapped detector.
    """

    def __init__(self, name: str, path: str) -> None:
        if not isinstance(path, str) or not path:
            raise ValueError(f'LossWeightingHook({name}): representation '
                             f'must be a module path, got {path!r}')
        self.name = name
        self.path = path
        self.outputs: List[torch.Tensor] = []
        self.active = False
        self._handle = None

    def attach(self, model: nn.Module) -> None:
        try:
            module = model.get_submodule(self.path)
        except AttributeError:
            children = [n for n, _ in model.named_children()]
            raise ValueError(
                f'LossWeightingHook({self.name}): representation='
                f'{self.path!r} is not a module of {type(model).__name__} '
                f'(its children: {children}); name the module whose output '
                f'every balanced loss depends on (the neck, by default)'
            ) from None
        self._handle = module.register_forward_hook(self._keep)

    def detach(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def start(self) -> None:
        self.outputs = []
        self.active = True

    def stop(self) -> None:
        self.outputs = []
        self.active = False

    def _keep(self, module, args, output) -> None:
        if self.active:
            self.outputs.extend(t for t in _tensors(output)
                                if t.requires_grad)

    def gramian(self, losses: Sequence[Optional[torch.Tensor]],
                optim_wrapper: Any = None) -> torch.Tensor:
        """The ``(K, K)`` float64 Gramian of ``losses`` (0-d, attached;
        ``None`` for a task that did not run) with respect to this
        iteration's outputs, all-reduced (sum / W^2). Needs the module to
        have run with outputs that require grad."""
        if not self.outputs:
            raise ValueError(
                f'LossWeightingHook({self.name}): the representation module '
                f'{self.path!r} produced no output that requires grad in '
                f'this training iteration (it did not run, or it is frozen); '
                f'gradient aggregation needs the losses\' gradients there: '
                f'set representation= to a trained module every loss '
                f'depends on')
        scale = None
        scaler = getattr(optim_wrapper, 'loss_scaler', None)
        first = next((loss for loss in losses if loss is not None), None)
        if scaler is not None and scaler.is_enabled() and first is not None:
            scaler.scale(first)  # creates the scale at the first call
            scale = scaler._get_scale_async()
        gramian = representation_gramian(losses, self.outputs, scale)
        world_size = dist.get_world_size()
        if world_size > 1:
            # NCCL: a CUDA tensor (the representation's device)
            dist.all_reduce(gramian, op='sum')
            gramian = gramian / float(world_size * world_size)
        return gramian


class ParameterGramian:
    """The exact Gramian of the task losses' Jacobian with respect to the
    parameters of the modules at ``paths`` (e.g. ``['backbone', 'neck']``),
    by TorchJD's ``torchjd.autogram.Engine`` (hooks on those modules,
    created before the first forward; one batched backward per Gramian).

    Single process only: under DDP the ranks share the parameters, so the
    global Jacobian is the mean of the ranks' Jacobians and its Gramian is
    not a sum of the ranks' Gramians (it has cross terms); reducing the
    Jacobians themselves is what this option would cost. ``autogram``
    batches the backward with ``torch.vmap``, which some ops do not support
    (mmcv's RoIAlign: two-stage detectors); that is a ``ValueError`` at the
    first Gramian.

    Args:
        name (str): the owning hook's name (error messages).
        paths (list[str]): module paths, none inside another.
    """

    def __init__(self, name: str, paths: Sequence[str]) -> None:
        if isinstance(paths, str) or not paths or not all(
                isinstance(p, str) and p for p in paths):
            raise ValueError(f'LossWeightingHook({name}): exact_gramian '
                             f'must be a list of module paths, got '
                             f'{paths!r}')
        self.name = name
        self.paths = list(paths)
        self.engine = None
        # the interface of RepresentationTap
        self.active = False

    def attach(self, model: nn.Module) -> None:
        if dist.get_world_size() > 1:
            raise ValueError(
                f'LossWeightingHook({self.name}): exact_gramian is for one '
                f'process: under DDP the ranks share the parameters, and the '
                f'Gramian of the global batch is not the sum of the ranks\' '
                f'Gramians; use the representation Gramian '
                f'(representation=...) for distributed training')
        from torchjd.autogram import Engine
        modules = []
        for path in self.paths:
            try:
                modules.append(model.get_submodule(path))
            except AttributeError:
                raise ValueError(
                    f'LossWeightingHook({self.name}): exact_gramian names '
                    f'{path!r}, not a module of {type(model).__name__}'
                ) from None
        self.engine = Engine(*modules, batch_dim=None)

    def detach(self) -> None:
        self.engine = None  # its hooks are removed with it

    def start(self) -> None:
        self.active = True

    def stop(self) -> None:
        self.active = False

    def gramian(self, losses: Sequence[Optional[torch.Tensor]],
                optim_wrapper: Any = None) -> torch.Tensor:
        """The ``(K, K)`` float64 Gramian at the parameters."""
        first = next((loss for loss in losses if loss is not None), None)
        if first is None:
            raise ValueError(f'LossWeightingHook({self.name}): no balanced '
                             f'loss ran in this iteration')
        vector = torch.stack([(first * 0 if loss is None else loss).float()
                              for loss in losses])
        scale = None
        scaler = getattr(optim_wrapper, 'loss_scaler', None)
        if scaler is not None and scaler.is_enabled():
            scaler.scale(first)  # creates the scale at the first call
            scale = scaler._get_scale_async()
            vector = vector * scale
        try:
            gramian = self.engine.compute_gramian(vector).double()
        except RuntimeError as error:
            raise ValueError(
                f'LossWeightingHook({self.name}): the exact Gramian over '
                f'{self.paths} failed: torchjd.autogram batches the backward '
                f'with torch.vmap, which an operation of this detector does '
                f'not support (two-stage detectors: mmcv\'s RoIAlign); use '
                f'the representation Gramian (exact_gramian=None). '
                f'torch said: {error}') from error
        if scale is not None:
            scale = scale.detach().double()
            gramian = gramian / (scale * scale)
        return gramian
