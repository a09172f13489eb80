"""A tiny two-head torch model for the gradient oracles of the loss-only
rules: the gradient that the rule's weights give (sum_k w_k grad L_k, the
losses weighted as mmdet's sum would) against the gradient of the method's
own scalarized loss S(L) back-propagated by autograd (a different path:
through TorchJD's scalarizer, not through our weights)."""
from typing import Callable, Dict, List, Sequence

import torch


def two_heads(seed: int = 0) -> torch.nn.Module:
    """Shared trunk + one head per task: tasks 'cls' and 'reg'."""
    torch.manual_seed(seed)
    return torch.nn.ModuleDict(dict(
        trunk=torch.nn.Linear(3, 4), cls=torch.nn.Linear(4, 1),
        reg=torch.nn.Linear(4, 1)))


def losses_of(model: torch.nn.Module, seed: int = 1,
              tasks: Sequence[str] = ('cls', 'reg')
              ) -> Dict[str, torch.Tensor]:
    """Positive task losses (float64) of a fixed batch."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(6, 3, generator=g)
    target = torch.randn(6, 1, generator=g)
    feat = torch.relu(model['trunk'](x))
    out = {}
    for i, t in enumerate(tasks):
        pred = model[t](feat)
        out[t] = ((pred - (i + 1) * target) ** 2).mean().double() + 0.1
    return out


def grads(model: torch.nn.Module, loss: torch.Tensor) -> List[torch.Tensor]:
    params = list(model.parameters())
    found = torch.autograd.grad(loss, params, allow_unused=True,
                                retain_graph=True)
    return [g if g is not None else torch.zeros_like(p)
            for g, p in zip(found, params)]


def weighted_vs_scalarized(rule, scalarize: Callable[[torch.Tensor],
                                                     torch.Tensor],
                           seed: int = 1):
    """(gradient of sum_k w_k L_k with the weights of ``rule.prepare`` on
    the detached losses, gradient of ``scalarize(stack(L))``)."""
    model = two_heads()
    losses = losses_of(model, seed, rule.tasks)
    weights = rule.prepare({t: v.detach() for t, v in losses.items()})
    weighted = sum(weights[t] * losses[t] for t in rule.tasks)
    direct = scalarize(torch.stack([losses[t] for t in rule.tasks]))
    return grads(model, weighted), grads(model, direct)
