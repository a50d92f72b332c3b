"""The benchmark scripts run: the GPU check in its CPU smoke mode, and the step benchmark on a tiny shape."""

from __future__ import annotations

import subprocess
import sys

from .conftest import ROOT


def _run(*args: str) -> str:
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_gpu_check_runs_on_the_cpu():
    out = _run("benchmarks/gpu_check.py", "--device", "cpu", "--small")
    assert "gradient checks: passed" in out
    assert "FAILED" not in out
    fp32 = next(line for line in out.splitlines() if line.startswith("fp32"))
    assert "%" in fp32 and "failed" not in fp32  # throughput, products, efficiency, FVU
    assert "within 1% of fp32's FVU: fp32" in out


def test_bench_train_prints_both_efficiencies():
    out = _run("benchmarks/bench_train.py", "--shapes", "20,64,4,128", "--rounds", "1", "--steps", "2")
    row = next(line for line in out.splitlines() if line.startswith("D=20 H=64 k=4 B=128"))
    assert row.count("%") == 2  # eff ours, eff ref
