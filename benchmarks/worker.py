"""Policy worker round-trip latency and throughput, with and without batching.

For each preset (random weights: latency does not depend on what the weights learned) the worker is started
on loopback and N concurrent clients (1, 4, 8), each with its own PolicyClient connection like separate robots,
send requests in a closed loop. Printed per configuration: round-trip p50/p95 (as the client measures it,
including encode, transport, queueing, inference and decode), mean batch size seen by the server, and
throughput (chunks per second over the whole run).

    .venv/bin/python benchmarks/worker.py                       # tiny and sim-small, 1/4/8 clients
    .venv/bin/python benchmarks/worker.py --presets tiny --requests 20
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from dataclasses import dataclass

import numpy as np


@dataclass
class Observation:
    images: dict[str, np.ndarray]
    state: np.ndarray


@dataclass
class RunResult:
    preset: str
    batching: str
    clients: int
    latencies_ms: list[float]
    batch_sizes: list[float]
    wall_s: float
    errors: int

    def row(self) -> str:
        lat = sorted(self.latencies_ms)
        p50 = statistics.median(lat) if lat else float("nan")
        p95 = lat[min(len(lat) - 1, round(0.95 * (len(lat) - 1)))] if lat else float("nan")
        mean_batch = statistics.fmean(self.batch_sizes) if self.batch_sizes else float("nan")
        throughput = len(lat) / self.wall_s if self.wall_s > 0 else float("nan")
        return (
            f"| {self.preset} | {self.batching} | {self.clients} | {len(lat)} | {p50:.1f} | {p95:.1f} | "
            f"{mean_batch:.2f} | {throughput:.1f} | {self.errors} |"
        )


def _observation(metadata: dict, image_side: int, seed: int) -> Observation:
    rng = np.random.default_rng(seed)
    images = {
        name: rng.integers(0, 256, size=(image_side, image_side, 3), dtype=np.uint8)
        for name in metadata["camera_names"]
    }
    state = rng.normal(size=len(metadata["state_names"])).astype(np.float32)
    return Observation(images, state)


def run_clients(
    url: str, clients: int, requests: int, image_side: int, timings: list[dict[str, float]] | None = None
) -> tuple[list[float], list[float], float, int]:
    """Closed-loop clients; `timings`, when given, collects every reply's timing dict (benchmarks/fleet.py)."""
    from policy.client import PolicyClient

    latencies: list[float] = []
    batches: list[float] = []
    errors = 0
    lock = threading.Lock()
    start_barrier = threading.Barrier(clients + 1)

    def robot(index: int) -> None:
        nonlocal errors
        client = PolicyClient(url, timeout_s=120.0)
        obs = _observation(client.metadata, image_side, index)
        client.act(obs, "pick up the cup")  # warm-up: connection and first-call costs are not steady state
        start_barrier.wait()
        for _ in range(requests):
            try:
                _, timing = client.act(obs, "pick up the cup")
            except Exception:
                with lock:
                    errors += 1
                continue
            with lock:
                latencies.append(timing["round_trip_ms"])
                batches.append(timing.get("server_batch_size", 1.0))
                if timings is not None:
                    timings.append(timing)
        client.close()

    threads = [threading.Thread(target=robot, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    start_barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return latencies, batches, time.perf_counter() - started, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default="tiny,sim-small")
    parser.add_argument("--clients", default="1,4,8")
    parser.add_argument("--requests", type=int, default=0, help="per client; 0 = 20 for tiny, 6 for larger presets")
    parser.add_argument("--image-side", type=int, default=224, help="clients send 224x224 like openpi clients")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--batch-wait-ms", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--device", default="cpu", help="torch device for the model (cpu, cuda)")
    parser.add_argument("--cpus", default="", help="pin the whole process to these CPU ids, e.g. 0,1")
    args = parser.parse_args()
    if args.cpus:
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})

    import torch

    from policy.inference import Pi05Policy
    from policy.server import PolicyServer

    torch.set_num_threads(args.threads)
    client_counts = [int(n) for n in args.clients.split(",")]
    cores = len(os.sched_getaffinity(0))
    gpu = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "none"
    print(
        f"# policy worker benchmark: device={args.device} (gpu: {gpu}), cpu cores usable={cores}, "
        f"torch threads={args.threads}, torch {torch.__version__}, image {args.image_side}x{args.image_side}, "
        f"max_batch={args.max_batch}, batch_wait_ms={args.batch_wait_ms}"
    )
    print("| preset | batching | clients | requests | p50 ms | p95 ms | mean batch | chunks/s | errors |")
    print("|---|---|---|---|---|---|---|---|---|")
    for preset in args.presets.split(","):
        policy = Pi05Policy.build_random(preset, seed=0, device=args.device)
        requests = args.requests or (20 if preset == "tiny" else 6)
        for batching, max_batch in (("on", args.max_batch), ("off", 1)):
            server = PolicyServer(policy, port=0, max_batch=max_batch, batch_wait_ms=args.batch_wait_ms)
            with server.run_in_thread() as port:
                for clients in client_counts:
                    latencies, batches, wall_s, errors = run_clients(
                        f"ws://127.0.0.1:{port}", clients, requests, args.image_side
                    )
                    print(RunResult(preset, batching, clients, latencies, batches, wall_s, errors).row(), flush=True)


if __name__ == "__main__":
    main()
