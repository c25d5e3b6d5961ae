"""π₀.₅ eager vs fast path (policy/fast_path.py), side by side in one process on the same random weights.

Usage:
    .venv/bin/python benchmarks/pi05_fast_path.py                                   # sim-small, CPU, 2 threads
    .venv/bin/python benchmarks/pi05_fast_path.py --preset pi05 --device cuda --cameras 2
    .venv/bin/python benchmarks/pi05_fast_path.py --preset pi05 --device cuda --compile-mode max-autotune-no-cudagraphs
    .venv/bin/python benchmarks/pi05_fast_path.py --preset pi05 --device cuda --no-graphs --compile-mode reduce-overhead

Reports, for each path: prefix ms, denoise ms (the whole Euler loop), chunk ms (prefix + loop, what one
request costs the model), chunk ms with RTC guidance, batch-8 chunks/s, System-2 ms per token (decode cost
after the prefix: (t(N tokens) - t(1 token)) / (N - 1)), and how far the fast path's outputs are from eager's
(max |Δaction| on identical noise; fraction of identical System-2 tokens). Medians over --runs after --warmup,
as wall-clock ms and as this process's CPU ms (the rows marked "CPU ms"; meaningful on CPU runs, where on a shared
machine they stay put while wall-clock ms follow the load).
Eager runs first on the unfused model; the fast path then fuses the same weights in place (no second copy).
On CUDA the fast path replays CUDA graphs captured per shape; on CPU the same static-buffer code runs eagerly.
Random weights: latency does not depend on their values. Prints a table and a final JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROMPT = "pick up the cup from the counter"
TASK = "put the dishes in the sink"


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="sim-small", help="tiny, sim-small or pi05")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8, help="batch size of the throughput row")
    parser.add_argument("--tokens", type=int, default=16, help="System-2 tokens decoded per call")
    parser.add_argument("--compile-mode", default=None, help="torch.compile mode for the fast path's pieces")
    parser.add_argument(
        "--no-graphs", action="store_true", help="fast path without manual CUDA graphs (e.g. with reduce-overhead)"
    )
    parser.add_argument("--skip-eager", action="store_true", help="fast path only (e.g. a quick GPU re-check)")
    parser.add_argument(
        "--tolerance", type=float, default=None, help="exit 1 if max |Δaction| fast vs eager exceeds this (bf16: ~0.1)"
    )
    return parser.parse_args()


def main() -> None:
    args = _args()
    import numpy as np
    import torch

    from policy.fast_path import FastPi05
    from policy.inference import Pi05Policy

    torch.set_num_threads(args.threads)
    cameras = ["head", "wrist", "third"][: args.cameras]
    extra = {"vocab_size": 257_152} if args.preset == "pi05" else {}  # PaliGemma's LM head: System-2 cost
    policy = Pi05Policy.build_random(
        args.preset,
        camera_names=cameras,
        state_names=[f"s{i}" for i in range(12)],
        action_names=[f"a{i}" for i in range(12)],
        device=args.device,
        fast_path=False,
        **extra,
    )
    model, config, device = policy.model, policy.config, policy.device
    rng = np.random.default_rng(0)

    class Obs:
        def __init__(self) -> None:
            size = config.image_size
            self.images = {name: rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for name in cameras}
            self.state = rng.normal(size=12).astype(np.float32)

    one = policy.make_batch([Obs()], [PROMPT])
    many = policy.make_batch([Obs() for _ in range(args.batch)], [PROMPT] * args.batch)
    system2 = policy.make_batch([Obs()], [TASK], system2=True)
    shape = (config.action_horizon, config.max_action_dim)
    noise = torch.randn(1, *shape, generator=torch.Generator().manual_seed(0)).to(device)
    noise_many = torch.randn(args.batch, *shape, generator=torch.Generator().manual_seed(1)).to(device)
    prev = torch.randn(1, 30, config.max_action_dim, generator=torch.Generator().manual_seed(2)).to(device)
    prev_len, delay = torch.tensor([30], device=device), torch.tensor([5], device=device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def timed(fn: Callable[[], object], runs: int = args.runs) -> tuple[float, float, float]:
        """(median wall ms, fastest wall ms, median process CPU ms) of `fn` after warm-up runs.

        The fastest run is the closest to an idle machine; CPU ms counts all threads of this process, so with
        --threads 1 it is a load-independent cost figure on a shared machine.
        """
        for _ in range(args.warmup):
            fn()
        wall, cpu = [], []
        for _ in range(runs):
            sync()
            start, cpu_start = time.perf_counter(), time.process_time()
            fn()
            sync()
            wall.append((time.perf_counter() - start) * 1e3)
            cpu.append((time.process_time() - cpu_start) * 1e3)
        return statistics.median(wall), min(wall), statistics.median(cpu)

    def path_rows(
        prefix: Callable[[], object],
        denoise: Callable[[], object],
        chunk: Callable[[], object],
        rtc_chunk: Callable[[], object],
        batch_chunk: Callable[[], object],
        decode: Callable[[int], object],
    ) -> tuple[dict[str, float], dict[str, float]]:
        """One path's numbers, as wall-clock and as process-CPU figures (same columns)."""
        wall: dict[str, float] = {}
        cpu: dict[str, float] = {}
        for name, fn in (
            ("prefix_ms", prefix),
            ("denoise_ms", denoise),
            ("chunk_ms", chunk),
            ("rtc_chunk_ms", rtc_chunk),
        ):
            wall[name], fastest, cpu[name] = timed(fn)
            if name == "chunk_ms":
                wall["chunk_min_ms"], cpu["chunk_min_ms"] = fastest, float("nan")
        batch_wall, _, batch_cpu = timed(batch_chunk)
        throughput = f"batch{args.batch}_chunks_per_s"
        wall[throughput], cpu[throughput] = args.batch * 1e3 / batch_wall, args.batch * 1e3 / batch_cpu
        one_wall, _, one_cpu = timed(lambda: decode(1), 3)
        many_wall, _, many_cpu = timed(lambda: decode(args.tokens), 3)
        wall["s2_ms_per_token"] = (many_wall - one_wall) / (args.tokens - 1)
        cpu["s2_ms_per_token"] = (many_cpu - one_cpu) / (args.tokens - 1)
        return wall, cpu

    rows: dict[str, dict[str, float]] = {}
    reference: dict[str, object] = {}
    with torch.no_grad():
        if not args.skip_eager:
            kv, pad = model.prefix_cache(one)
            rows["eager"], rows["eager (CPU ms)"] = path_rows(
                lambda: model.prefix_cache(one),
                lambda: model.denoise(kv, pad, noise, one.state, config.num_steps),
                lambda: model.sample_actions(one, noise=noise),
                lambda: model.sample_actions(one, noise=noise, prev_actions=prev, delay=delay, prev_lengths=prev_len),
                lambda: model.sample_actions(many, noise=noise_many),
                lambda n: model.generate_subtask(system2, max_new_tokens=n, eos_id=-1),
            )
            reference["actions"] = model.sample_actions(one, noise=noise).float().cpu()
            reference["tokens"] = model.generate_subtask(system2, max_new_tokens=args.tokens, eos_id=-1)

        built = time.perf_counter()
        graphs_on = device.type == "cuda" and not args.no_graphs
        fast = FastPi05(model, graphs=graphs_on, compile_mode=args.compile_mode, max_new_tokens=max(args.tokens, 1))
        key = fast.shape_key(one, slice(0, 1))
        fast.warmup(len(cameras), batch_sizes=sorted({1, args.batch}), prompt_lengths=[key.prompt])
        build_s = time.perf_counter() - built
        graphs = fast.chunk_graphs(key)
        graphs.inputs.load(one, slice(0, 1))
        graphs.noise.copy_(noise)
        graphs.prefix()
        rows["fast"], rows["fast (CPU ms)"] = path_rows(
            graphs.prefix,
            graphs.denoise,
            lambda: fast.sample_actions(one, noise),
            lambda: fast.sample_actions(one, noise, prev, prev_len, delay),
            lambda: fast.sample_actions(many, noise_many),
            lambda n: fast.generate_subtask(system2, max_new_tokens=n, eos_id=-1),
        )
        agreement: dict[str, float] = {"fast_build_s": build_s}
        if reference:
            actions = fast.sample_actions(one, noise).float().cpu()
            agreement["max_abs_action_diff"] = float((actions - reference["actions"]).abs().max())
            tokens = fast.generate_subtask(system2, max_new_tokens=args.tokens, eos_id=-1)
            same = sum(a == b for a, b in zip(tokens[0], reference["tokens"][0], strict=True))  # type: ignore[index]
            agreement["s2_tokens_identical"] = same / args.tokens

    name = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu, {args.threads} threads"
    print(f"# {args.preset}, {args.cameras} cameras, {config.image_size} px, {config.num_steps} steps, "
          f"horizon {config.action_horizon}, {model.dtype}, {name}, graphs={fast.graphs}, compile={args.compile_mode}")  # fmt: skip
    columns = list(next(iter(rows.values())))
    print("| path | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for path, row in rows.items():
        print(f"| {path} | " + " | ".join(f"{row[c]:.2f}" for c in columns) + " |")
    if "eager" in rows:
        for kind in ("", " (CPU ms)"):
            ratio = rows["eager" + kind]["chunk_ms"] / rows["fast" + kind]["chunk_ms"]
            print(f"chunk speed-up{kind or ' (wall)'}: {ratio:.2f}x")
    print(" ".join(f"{k}={v:.3g}" for k, v in agreement.items()))
    print(json.dumps({"preset": args.preset, "device": name, "cameras": args.cameras, **rows, **agreement}))
    if args.tolerance is not None and agreement.get("max_abs_action_diff", 0.0) > args.tolerance:
        print(f"FAIL: fast path differs from eager by more than {args.tolerance}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
