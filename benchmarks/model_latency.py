"""π₀.₅ inference latency: prefix pass, one denoising step, whole chunk, Pi05Policy.act, System-2 decode, memory.

Usage:
    .venv/bin/python benchmarks/model_latency.py                      # tiny + sim-small on CPU, 2 threads
    .venv/bin/python benchmarks/model_latency.py --presets pi05 --device cuda --cameras 3
Each preset runs in its own subprocess so peak memory is per model. Random weights (latency does not
depend on their values). Prints one table; numbers are medians over --runs after --warmup runs.
chunk_cpu_ms is the process CPU time of one chunk (all threads); with --threads 1 it is a load-independent
cost figure on a shared machine; *_min_ms are the fastest of the runs (closest to an idle machine); peak_mem_MiB is the process's max RSS on CPU (torch included) or max allocated on CUDA.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _measure(preset: str, device: str, threads: int, cameras: int, runs: int, warmup: int, compile_model: bool) -> dict:
    import numpy as np
    import torch

    from policy.inference import Pi05Policy

    torch.set_num_threads(threads)
    camera_names = ["head", "wrist", "third"][:cameras]
    state_names = [f"s{i}" for i in range(12)]
    action_names = [f"a{i}" for i in range(12)]
    build_start = time.perf_counter()
    # pi05 keeps PaliGemma's 257,152-token vocabulary (LM-head cost matters for System-2 decoding)
    extra = {"vocab_size": 257_152} if preset == "pi05" else {}
    policy = Pi05Policy.build_random(
        preset, camera_names=camera_names, state_names=state_names, action_names=action_names, device=device, **extra
    )
    build_s = time.perf_counter() - build_start
    model = policy.model
    if compile_model and device.startswith("cuda"):
        model.expert_velocity = torch.compile(model.expert_velocity, mode="max-autotune")  # type: ignore[method-assign]
    rng = np.random.default_rng(0)

    class Obs:
        images = {
            name: rng.integers(0, 256, (policy.config.image_size,) * 2 + (3,), dtype=np.uint8) for name in camera_names
        }
        state = rng.normal(size=len(state_names)).astype(np.float32)

    obs = Obs()
    batch = policy.make_batch([obs], ["pick up the cup from the counter"])
    noise = torch.randn(1, policy.config.action_horizon, policy.config.max_action_dim, device=policy.device)

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    best: dict[str, float] = {}

    def timed(fn, n: int, cpu: list | None = None, name: str = "") -> float:
        values, cpu_values = [], []
        for _ in range(n):
            sync()
            start, cpu_start = time.perf_counter(), time.process_time()
            fn()
            sync()
            values.append((time.perf_counter() - start) * 1000)
            cpu_values.append((time.process_time() - cpu_start) * 1000)
        if cpu is not None:
            cpu.append(statistics.median(cpu_values))
        if name:
            best[name] = min(values)
        return statistics.median(values)

    with torch.no_grad():
        kv, pad = model.prefix_cache(batch)
        t = torch.full((1,), 0.5, device=policy.device)
        for _ in range(warmup):
            model.sample_actions(batch, noise=noise)
        prefix_ms = timed(lambda: model.prefix_cache(batch), runs, name="prefix")
        step_ms = timed(lambda: model.denoise_step(kv, pad, noise, t, batch.state), runs, name="step")
        chunk_cpu: list[float] = []
        chunk_ms = timed(
            lambda: model.sample_actions(batch, noise=noise, num_steps=policy.config.num_steps),
            runs,
            chunk_cpu,
            name="chunk",
        )
    act_ms = timed(lambda: policy.act(obs, "pick up the cup from the counter"), runs)
    prev = policy.act(obs, "pick up the cup from the counter").actions[20:]
    rtc_ms = timed(lambda: policy.act(obs, "pick up the cup from the counter", prev_chunk=prev, delay=5), 3)
    subtask_ms = timed(lambda: policy.model.generate_subtask(batch, max_new_tokens=16, eos_id=-1), 3)
    params = sum(p.numel() for p in model.parameters())
    result = {
        "preset": preset,
        "device": device,
        "threads": threads,
        "cameras": cameras,
        "params_M": round(params / 1e6, 2),
        "prefix_tokens": int(pad.shape[1]),
        "prefix_ms": round(prefix_ms, 2),
        "step_ms": round(step_ms, 2),
        "chunk_ms": round(chunk_ms, 2),
        "prefix_min_ms": round(best["prefix"], 2),
        "step_min_ms": round(best["step"], 2),
        "chunk_min_ms": round(best["chunk"], 2),
        "chunk_cpu_ms": round(chunk_cpu[0], 2),
        "act_ms": round(act_ms, 2),
        "act_rtc_ms": round(rtc_ms, 2),
        "subtask16_ms": round(subtask_ms, 2),
        "build_s": round(build_s, 2),
    }
    if device.startswith("cuda"):
        result["peak_mem_MiB"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    else:
        result["peak_mem_MiB"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["tiny", "sim-small"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="torch.compile the denoising step (CUDA only)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = _measure(
            args.presets[0], args.device, args.threads, args.cameras, args.runs, args.warmup, args.compile
        )
        print(json.dumps(result))
        return
    rows = []
    for preset in args.presets:
        cmd = [sys.executable, __file__, "--child", "--presets", preset, "--device", args.device,
               "--threads", str(args.threads), "--cameras", str(args.cameras), "--runs", str(args.runs),
               "--warmup", str(args.warmup)] + (["--compile"] if args.compile else [])  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    columns = list(rows[0])
    print(" | ".join(columns))
    for row in rows:
        print(" | ".join(str(row[c]) for c in columns))


if __name__ == "__main__":
    main()
