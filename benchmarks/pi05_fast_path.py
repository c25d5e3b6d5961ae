"""π₀.₅ eager vs fast path (policy/fast_path.py), side by side in one process on the same random weights.

Usage:
    .venv/bin/python benchmarks/pi05_fast_path.py                                   # sim-small, CPU, 2 threads
    .venv/bin/python benchmarks/pi05_fast_path.py --preset pi05 --device cuda --cameras 2
    .venv/bin/python benchmarks/pi05_fast_path.py --preset pi05 --device cuda --compile-mode max-autotune-no-cudagraphs
    .venv/bin/python benchmarks/pi05_fast_path.py --preset pi05 --device cuda --no-graphs --compile-mode reduce-overhead

Reports, for each path: prefix ms, denoise ms (the whole Euler loop), chunk ms (prefix + loop, what one
request costs the model), chunk ms with RTC guidance, batch-8 chunks/s, System-2 ms per token (decode cost
after the prefix: (t(N tokens) - t(1 token)) / (N - 1)), and how far the fast path's outputs are from eager's
(max |Δaction| on identical noise; fraction of identical System-2 tokens). Medians over --runs after --warmup.
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

    fastest: dict[int, float] = {}
    cpu_ms: dict[int, float] = {}

    def timed(fn: Callable[[], object], runs: int = args.runs) -> float:
        """Median wall ms; also keeps the fastest run (closest to an idle machine) and the median process CPU ms
        (all threads; with --threads 1 a load-independent cost figure on a shared machine)."""
        for _ in range(args.warmup):
            fn()
        values, cpu_values = [], []
        for _ in range(runs):
            sync()
            start, cpu_start = time.perf_counter(), time.process_time()
            fn()
            sync()
            values.append((time.perf_counter() - start) * 1e3)
            cpu_values.append((time.process_time() - cpu_start) * 1e3)
        fastest[id(fn)], cpu_ms[id(fn)] = min(values), statistics.median(cpu_values)
        return statistics.median(values)

    def chunk_row(chunk: Callable[[], object]) -> dict[str, float]:
        return {"chunk_ms": timed(chunk), "chunk_min_ms": fastest[id(chunk)], "chunk_cpu_ms": cpu_ms[id(chunk)]}

    def per_token(decode: Callable[[int], object]) -> float:
        return (timed(lambda: decode(args.tokens), 3) - timed(lambda: decode(1), 3)) / (args.tokens - 1)

    rows: dict[str, dict[str, float]] = {}
    reference: dict[str, object] = {}
    with torch.no_grad():
        if not args.skip_eager:
            kv, pad = model.prefix_cache(one)
            rows["eager"] = {
                "prefix_ms": timed(lambda: model.prefix_cache(one)),
                "denoise_ms": timed(lambda: model.denoise(kv, pad, noise, one.state, config.num_steps)),
                **chunk_row(lambda: model.sample_actions(one, noise=noise)),
                "rtc_chunk_ms": timed(
                    lambda: model.sample_actions(
                        one, noise=noise, prev_actions=prev, delay=delay, prev_lengths=prev_len
                    )
                ),
                f"batch{args.batch}_chunks_per_s": args.batch
                * 1e3
                / timed(lambda: model.sample_actions(many, noise=noise_many)),
                "s2_ms_per_token": per_token(lambda n: model.generate_subtask(system2, max_new_tokens=n, eos_id=-1)),
            }
            reference["actions"] = model.sample_actions(one, noise=noise).float().cpu()
            reference["tokens"] = model.generate_subtask(system2, max_new_tokens=args.tokens, eos_id=-1)

        built = time.perf_counter()
        graphs_on = device.type == "cuda" and not args.no_graphs
        fast = FastPi05(model, graphs=graphs_on, compile_mode=args.compile_mode, max_new_tokens=max(args.tokens, 1))
        fast.warmup(
            len(cameras), batch_sizes=sorted({1, args.batch}), prompt_lengths=[fast.shape_key(one, slice(0, 1)).prompt]
        )
        build_s = time.perf_counter() - built
        graphs = fast.chunk_graphs(fast.shape_key(one, slice(0, 1)))
        graphs.inputs.load(one, slice(0, 1))
        graphs.noise.copy_(noise)
        graphs.prefix()
        rows["fast"] = {
            "prefix_ms": timed(graphs.prefix),
            "denoise_ms": timed(graphs.denoise),
            **chunk_row(lambda: fast.sample_actions(one, noise)),
            "rtc_chunk_ms": timed(lambda: fast.sample_actions(one, noise, prev, prev_len, delay)),
            f"batch{args.batch}_chunks_per_s": args.batch * 1e3 / timed(lambda: fast.sample_actions(many, noise_many)),
            "s2_ms_per_token": per_token(lambda n: fast.generate_subtask(system2, max_new_tokens=n, eos_id=-1)),
        }
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
        print("speed-up (chunk): %.2fx" % (rows["eager"]["chunk_ms"] / rows["fast"]["chunk_ms"]))
    print(" ".join(f"{k}={v:.3g}" for k, v in agreement.items()))
    print(json.dumps({"preset": args.preset, "device": name, "cameras": args.cameras, **rows, **agreement}))
    if args.tolerance is not None and agreement.get("max_abs_action_diff", 0.0) > args.tolerance:
        print(f"FAIL: fast path differs from eager by more than {args.tolerance}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
