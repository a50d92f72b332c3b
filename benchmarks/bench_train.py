"""How close a training step comes to the speed of its dense products, measured side by side in one run.

    python benchmarks/bench_train.py [--rounds 5] [--steps 10] [--device cpu] [--profile]

For each shape (D, H, k, batch) it times, in alternating rounds so that noise on a shared machine
hits all of them alike (medians over all rounds):

- step:     one full ``Trainer.train_step`` (batch gather, encode, decode, loss, backward, decoder
            projection, Adam, decoder renormalisation, homeostasis, statistics), on synthetic data;
- forward:  the encoder's dense product ``addmm(b_enc, x, W_enc)``, (B, D) x (D, H), on the same
            tensors: the one dense product sparsecode's step needs (its encoder and decoder gradients
            are sparse, over the k selected units); when the decode is dense at this shape (small H on
            a CPU, see ``sparsecode.topk.decode``), its three products are added;
- w-grad:   the dense encoder weight gradient ``x.T @ G``, (D, B) x (B, H): the second product of
            the two-product reference step of issue #5, which sparsecode does not compute.

The products write into outputs allocated once, so that they run at their own speed: a fresh
output above glibc's 32 MiB mmap threshold (B=4096, H=4096: 64 MiB) is page-faulted in on every call,
which made the products look 30-45% slower than they are.

It prints the matmul speed measured in this run (GFLOP/s of the forward product), the step's
throughput, and two efficiencies (dense products alone / full step; 1.0 would be a step that costs
nothing beyond its products):

- ours:      forward product(s) / step: against the products this step actually needs;
- reference: (forward + w-grad) / step: against the two dense products of the reference step that
             issue #5 describes, i.e. the work a dense-gradient implementation could not avoid.

``--profile`` also prints the operators that took the most time in 20 steps (torch.profiler).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from sparsecode.config import TrainConfig
from sparsecode.topk import sparse_decode_wins
from sparsecode.training import Trainer
from synthetic import synthetic

SHAPES = "300,3000,32,1024;300,4096,32,4096;50,1000,32,1024"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, n: int, device: torch.device) -> list[float]:
    out = []
    for _ in range(n):
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t)
    return out


def measure(D: int, H: int, k: int, B: int, rounds: int, steps: int, device: str, profile: bool) -> dict:
    trainer = Trainer(synthetic(16 * B, D), TrainConfig(hidden=H, k=k, batch_size=B, epochs=1000, device=device))
    dev = trainer.device
    model = trainer.model

    def step() -> None:
        if trainer.batch >= trainer.steps_per_epoch:
            trainer.batch = 0  # stay inside the first epoch's order: no end-of-epoch bookkeeping
        trainer.train_step()

    # A normalised batch, as the step sees it (x_all: sparsecode before streaming, for before/after runs).
    x = trainer.x_all[:B].clone() if hasattr(trainer, "x_all") else trainer.source.batch(0).clone()
    W_enc, b_enc, W_dec = (p.detach().clone() for p in (model.W_enc, model.b_enc, model.W_dec))
    grad_pre = torch.randn(B, H, device=dev)
    dense_decode = not sparse_decode_wins(H, dev) if model.decode_impl == "auto" else model.decode_impl == "dense"
    codes = torch.randn(B, H, device=dev)
    grad_out = torch.randn(B, D, device=dev)

    # The products write into outputs allocated once: their own speed, without the page faults a
    # fresh output above glibc's 32 MiB mmap threshold costs.
    out_pre = torch.empty(B, H, device=dev)
    out_wgrad = torch.empty(D, H, device=dev)
    if dense_decode:
        out_dec = (torch.empty(B, D, device=dev), torch.empty(B, H, device=dev), torch.empty(H, D, device=dev))

    def forward() -> None:
        torch.addmm(b_enc, x, W_enc, out=out_pre)
        if dense_decode:  # forward, and the activations' and decoder weights' gradients
            torch.mm(codes, W_dec, out=out_dec[0])
            torch.mm(grad_out, W_dec.t(), out=out_dec[1])
            torch.mm(codes.t(), grad_out, out=out_dec[2])

    def weight_grad() -> None:
        torch.mm(x.t(), grad_pre, out=out_wgrad)

    for fn in (step, forward, weight_grad):  # warm-up: allocator, MKL and cuBLAS plans
        timed(fn, 3, dev)
    times: dict[str, list[float]] = {"step": [], "forward": [], "w-grad": []}
    for _ in range(rounds):
        times["step"] += timed(step, steps, dev)
        times["forward"] += timed(forward, steps, dev)
        times["w-grad"] += timed(weight_grad, steps, dev)
    sec = {name: statistics.median(t) for name, t in times.items()}
    fwd_flops = 2 * B * D * H * (4 if dense_decode else 1)
    result = {
        "shape": f"D={D} H={H} k={k} B={B}",
        "step_ms": 1e3 * sec["step"],
        "forward_ms": 1e3 * sec["forward"],
        "wgrad_ms": 1e3 * sec["w-grad"],
        "gflops": fwd_flops / sec["forward"] / 1e9,
        "vectors_per_s": B / sec["step"],
        "eff_ours": sec["forward"] / sec["step"],
        "eff_reference": (sec["forward"] + sec["w-grad"]) / sec["step"],
        "dense_decode": dense_decode,
    }
    if profile:
        from torch.profiler import ProfilerActivity, profile as torch_profile

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
        with torch_profile(activities=activities) as prof:
            for _ in range(20):
                step()
            sync(dev)
        key = "cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total"
        result["profile"] = prof.key_averages().table(sort_by=key, row_limit=15, max_name_column_width=40)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default=SHAPES, help="D,H,k,batch;... (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10, help="timed calls of each kind per round")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    ap.add_argument("--profile", action="store_true", help="also print the top operators of the step")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    print(f"{'shape':<28}{'step ms':>9}{'fwd ms':>8}{'wgrad ms':>9}{'GFLOP/s':>9}{'vectors/s':>11}"
          f"{'eff ours':>10}{'eff ref':>9}")
    for spec in args.shapes.split(";"):
        D, H, k, B = map(int, spec.split(","))
        r = measure(D, H, k, B, args.rounds, args.steps, args.device, args.profile)
        print(f"{r['shape']:<28}{r['step_ms']:>9.2f}{r['forward_ms']:>8.2f}{r['wgrad_ms']:>9.2f}{r['gflops']:>9.0f}"
              f"{r['vectors_per_s']:>11,.0f}{r['eff_ours']:>10.0%}{r['eff_reference']:>9.0%}"
              + ("  (dense decode: its 3 products counted)" if r["dense_decode"] else ""), flush=True)
        if "profile" in r:
            print(r["profile"])
    print("eff ours = the step's own dense products / step; eff ref = (forward + dense encoder weight gradient) / step,"
          " the two-product reference step of issue #5")


if __name__ == "__main__":
    main()
