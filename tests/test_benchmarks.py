"""The benchmark scripts run: the GPU check in its CPU smoke mode, and the step benchmark on a tiny shape."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import ROOT


def _run(*args: str) -> str:
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_gpu_check_runs_on_the_cpu(tmp_path):
    """The GPU machine's script in its CPU smoke mode: every section runs, the correctness checks pass
    (on one device the CPU-vs-device and resume comparisons are exact), JSON and table are written."""
    out = _run("benchmarks/gpu_check.py", "--device", "cpu", "--small", "--out", str(tmp_path / "check.json"))
    results = json.loads((tmp_path / "check.json").read_text())
    assert results["passed"] and "FAILED" not in out
    assert set(results["gradcheck"]) >= {"encoder with shift", "decoder, shuffled indices", "unit products, skewed use"}
    assert all(results["gradcheck"].values())
    for dtype in ("float64", "float32"):
        r = results["cpu_vs_device"][dtype]
        assert r["same_selections"] and r["max_weight_diff"] == 0.0
    assert results["resume"]["max_weight_diff"] == 0.0
    assert "skipped" in results["sync_audit"] and "sync audit               skipped: no CUDA device" in out
    rows = results["throughput"]
    assert [(r["data"], r["precision"]) for r in rows] == [("resident", "fp32"), ("streamed", "fp32")]
    assert all(r["step_s"] > 0 and r["floor_s"] > 0 and 0 < r["fvu"] < 2 for r in rows)
    assert results["encode"]["encoder"]["rows_with_same_units"] == 1.0 and results["ddp"]["passed"]
    assert (tmp_path / "check.txt").read_text().strip() == out.strip().split("\n\n")[-1].strip()


def test_bench_train_prints_both_efficiencies():
    out = _run("benchmarks/bench_train.py", "--shapes", "20,64,4,128", "--rounds", "1", "--steps", "2")
    row = next(line for line in out.splitlines() if line.startswith("D=20 H=64 k=4 B=128"))
    assert row.count("%") == 2  # eff ours, eff ref


def test_every_benchmark_script_imports():
    """Each script's imports resolve against the library as it is (a renamed or moved name breaks
    the script, and no other test runs most of them); their main() is not called."""
    code = ("import importlib.util, pathlib, sys; sys.path.insert(0, 'benchmarks')\n"
            "for path in sorted(pathlib.Path('benchmarks').glob('*.py')):\n"
            "    spec = importlib.util.spec_from_file_location(path.stem, path)\n"
            "    spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
            "    print(path.name)\n")
    names = _run("-c", code).split()
    assert names == sorted(p.name for p in (ROOT / "benchmarks").glob("*.py"))
