"""Adam for training, without the start-up cost of ``torch.optim``.

Creating any ``torch.optim`` optimizer imports ``torch._dynamo`` (its methods are wrapped to keep the
compiler out), about one second of every ``sparsecode train`` on the 2-core development machines:
a third of the quickstart's training run. :class:`FusedAdam` calls the same fused kernel that
``torch.optim.Adam(fused=True)`` calls (``torch._fused_adam_``: one pass over each parameter for the
whole update), with the same state, so its results are bit-identical to it (tested), and it imports
nothing. :func:`make_adam` falls back to ``torch.optim.Adam`` where this torch has no fused kernel
for the device (CPUs before torch 2.4).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


#: The settings torch.optim.Adam keeps in a parameter group, at the values this update uses.
TORCH_ADAM_SETTINGS = {"weight_decay": 0.0, "amsgrad": False, "maximize": False, "foreach": None, "capturable": False,
                       "differentiable": False, "fused": True}


class FusedAdam:
    """Adam (Kingma and Ba, 2015) over a list of parameters, one learning rate for all.

    The interface the training loop uses, as ``torch.optim.Adam`` has it: ``param_groups[0]["lr"]``
    (set before each step), :meth:`zero_grad`, :meth:`step`, :meth:`state_dict` and
    :meth:`load_state_dict`. Parameters without a gradient are skipped, as there.
    """

    def __init__(self, params: list[torch.nn.Parameter], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        self.params = list(params)
        self.param_groups = [{"params": self.params, "lr": lr, "betas": betas, "eps": eps}]
        self.state: dict[int, dict[str, Tensor]] = {}  # parameter number -> step, exp_avg, exp_avg_sq

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def _state(self, i: int, p: Tensor) -> dict[str, Tensor]:
        if i not in self.state:  # as torch.optim.Adam(fused=True) creates it
            self.state[i] = {
                "step": torch.zeros((), dtype=torch.float32, device=p.device),
                "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
            }
        return self.state[i]

    @torch.no_grad()
    def step(self) -> None:
        group = self.param_groups[0]
        beta1, beta2 = group["betas"]
        by_kind: dict[tuple[torch.device, torch.dtype], list[tuple[Tensor, dict[str, Tensor]]]] = {}
        for i, p in enumerate(self.params):
            if p.grad is not None:
                by_kind.setdefault((p.device, p.dtype), []).append((p, self._state(i, p)))
        for items in by_kind.values():
            params = [p for p, _ in items]
            steps = [s["step"] for _, s in items]
            torch._foreach_add_(steps, 1)
            torch._fused_adam_(
                params, [p.grad for p in params], [s["exp_avg"] for _, s in items],
                [s["exp_avg_sq"] for _, s in items], [], steps,
                amsgrad=False, lr=float(group["lr"]), beta1=beta1, beta2=beta2, weight_decay=0.0,
                eps=group["eps"], maximize=False, grad_scale=None, found_inf=None,
            )

    def state_dict(self) -> dict[str, Any]:
        """torch.optim.Adam's layout, with its settings as this update has them, so that either loads
        the other's state (a checkpoint resumes where make_adam falls back to torch.optim)."""
        group = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        return {"state": {i: dict(s) for i, s in self.state.items()},
                "param_groups": [{**TORCH_ADAM_SETTINGS, **group, "params": list(range(len(self.params)))}]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        group = state["param_groups"][0]
        if len(group["params"]) != len(self.params):
            raise ValueError(f"the optimizer state is for {len(group['params'])} parameters, not {len(self.params)}")
        self.param_groups[0].update({k: v for k, v in group.items() if k != "params"})
        self.state = {}
        for i, s in state["state"].items():
            p = self.params[int(i)]
            # The moments in the parameter's own layout (the fused kernel walks them alike), copied in.
            moments = {name: torch.empty_like(p, memory_format=torch.preserve_format).copy_(s[name])
                       for name in ("exp_avg", "exp_avg_sq")}
            self.state[int(i)] = {"step": s["step"].to(device=p.device, dtype=torch.float32), **moments}


def fused_adam_available(device: torch.device) -> bool:
    """Whether this torch has the fused Adam kernel for ``device`` (CUDA; CPUs from torch 2.4)."""
    p = torch.zeros(1, device=device)
    try:
        torch._fused_adam_([p], [p.clone()], [p.clone()], [p.clone()], [], [torch.ones((), device=device)],
                           amsgrad=False, lr=0.0, beta1=0.9, beta2=0.999, weight_decay=0.0, eps=1e-8,
                           maximize=False, grad_scale=None, found_inf=None)
    except (AttributeError, RuntimeError, NotImplementedError):
        return False
    return True


def make_adam(params: list[torch.nn.Parameter], lr: float):
    """The training loop's Adam: :class:`FusedAdam`, or ``torch.optim.Adam`` (fused where this torch
    has that) when there is no fused kernel for the parameters' device. The fused update reads and
    writes each (H, D) tensor once; the for-loop form about ten times (3x slower on the 2-core CPUs)."""
    device = params[0].device
    if fused_adam_available(device):
        return FusedAdam(params, lr)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.Adam(params, lr=lr)
