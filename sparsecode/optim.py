"""Adam for training, through torch's public functional Adam, without the start-up cost of its class.

Creating a ``torch.optim.Adam`` imports ``torch._dynamo`` (its methods are wrapped to keep the
compiler out): 1.2-1.35 s of every ``sparsecode train`` on the 2-core development machines with
torch 2.13, against 0.08-0.10 s for :class:`FusedAdam` (a third of the quickstart's training run).
:class:`FusedAdam` keeps the class's state and calls the function the class calls,
``torch.optim.adam.adam`` with ``fused=True`` (one pass of the fused kernel over each parameter
for the whole update), which imports nothing: its results are bit-identical to
``torch.optim.Adam(fused=True)`` (tested), and so is its state dict. :func:`make_adam` falls back
to ``torch.optim.Adam(foreach=True)`` where this torch has no fused kernel for the device (CPUs
before torch 2.4).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.optim.adam import adam


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
        live = [(p, self._state(i, p)) for i, p in enumerate(self.params) if p.grad is not None]
        if live:
            _fused_step([p for p, _ in live], [s for _, s in live], lr=float(group["lr"]), betas=group["betas"],
                        eps=group["eps"])

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


def _fused_step(params: list[Tensor], states: list[dict[str, Tensor]], lr: float, betas: tuple[float, float],
                eps: float) -> None:
    """One fused Adam update of ``params`` (their ``.grad`` set) and their ``states`` (step, moments):
    the function ``torch.optim.Adam(fused=True).step`` calls, which groups the tensors by device and dtype."""
    adam(params, [p.grad for p in params], [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states], [],
         [s["step"] for s in states], fused=True, amsgrad=False, beta1=betas[0], beta2=betas[1], lr=lr,
         weight_decay=0.0, eps=eps, maximize=False)


def fused_adam_available(device: torch.device) -> bool:
    """Whether this torch has the fused Adam kernel for ``device`` (CUDA; CPUs from torch 2.4)."""
    p = torch.zeros(1, device=device)
    p.grad = torch.zeros(1, device=device)
    state = {"step": torch.zeros((), device=device), "exp_avg": torch.zeros(1, device=device),
             "exp_avg_sq": torch.zeros(1, device=device)}
    try:
        _fused_step([p], [state], lr=0.0, betas=(0.9, 0.999), eps=1e-8)
    except (AttributeError, RuntimeError, NotImplementedError):
        return False
    return True


def make_adam(params: list[torch.nn.Parameter], lr: float):
    """The training loop's Adam: :class:`FusedAdam`, or ``torch.optim.Adam(foreach=True)`` when there
    is no fused kernel for the parameters' device. The fused update reads and writes each (H, D)
    tensor once; the for-loop form about ten times (3x slower on the 2-core CPUs)."""
    if fused_adam_available(params[0].device):
        return FusedAdam(params, lr)
    return torch.optim.Adam(params, lr=lr, foreach=True)
