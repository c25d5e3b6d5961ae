"""Policy fleet on Ray Serve vs a plain `hearth serve-policy`: chunks/s and round-trip p50/p95 for 1, 8, 32 clients.

Every server is the real command in its own process, as users start it (tiny preset, random weights, CPU):
the plain worker, then `--ray --replicas 1`, then `--ray --replicas 2` (one CPU per replica). Clients are
PolicyClient connections, one per simulated robot, in a closed loop (benchmarks/worker.py `run_clients`), all to
one address. Printed per configuration: p50/p95 round trip as the client measures it, mean server batch size,
chunks/s over the run, errors, and where the median request spent its time: `model` (the batch's model call),
`server` (message decoded to reply ready, minus model: queueing, and for Ray the handle hop to a model replica)
and `transport` (round trip minus the server's part: client encode/decode, loopback, and for Ray the Serve proxy
relaying WebSocket frames to the ingress replica).

    .venv/bin/python benchmarks/fleet.py                        # plain, ray x1, ray x2; 1/8/32 clients
    .venv/bin/python benchmarks/fleet.py --servers ray2 --clients 8 --requests 5
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from worker import RunResult, run_clients  # benchmarks/worker.py: same client loop and table row

HEARTH = str(Path(sys.executable).parent / "hearth")
SERVERS = {"plain": [], "ray1": ["--ray", "--replicas", "1"], "ray2": ["--ray", "--replicas", "2"]}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(
    server: str, checkpoint: Path, port: int, max_batch: int, batch_wait_ms: float, log: Path
) -> subprocess.Popen:
    args = [
        HEARTH,
        "serve-policy",
        "--checkpoint",
        str(checkpoint),
        "--port",
        str(port),
        "--max-batch",
        str(max_batch),
        "--batch-wait-ms",
        str(batch_wait_ms),
        *SERVERS[server],
    ]
    process = subprocess.Popen(args, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 600
    while not re.search(r"listening on ws://", log.read_text(errors="replace")):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{server} did not start:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.5)
    return process


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def breakdown(timings: list[dict[str, float]]) -> str:
    """Median model / server-side non-model / transport milliseconds (see the module docstring)."""
    if not timings:
        return "-"
    model = statistics.median(t.get("policy_infer_ms", 0.0) for t in timings)
    server = statistics.median(t.get("server_infer_ms", 0.0) + t.get("server_decode_ms", 0.0) for t in timings)
    transport = statistics.median(
        t["round_trip_ms"] - t.get("server_infer_ms", 0.0) - t.get("server_decode_ms", 0.0) for t in timings
    )
    return f"{model:.0f} / {max(server - model, 0.0):.0f} / {transport:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default="plain,ray1,ray2", help=f"any of {list(SERVERS)}")
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--requests", type=int, default=8, help="per client, after one warm-up request")
    parser.add_argument("--image-side", type=int, default=224)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--batch-wait-ms", type=float, default=5.0)
    args = parser.parse_args()

    import ray
    import torch

    from policy.inference import Pi05Policy

    folder = Path(tempfile.mkdtemp(prefix="hearth-fleet-bench-"))
    checkpoint = folder / "tiny"
    Pi05Policy.build_random("tiny", seed=0).save(checkpoint)
    print(
        f"# fleet benchmark: {os.cpu_count()} CPU cores, torch {torch.__version__}, ray {ray.__version__}, tiny preset "
        f"(random weights, CPU), image {args.image_side}x{args.image_side}, max_batch={args.max_batch}, "
        f"batch_wait_ms={args.batch_wait_ms}, {args.requests} requests per client; date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    print(
        "| server | batching | clients | requests | p50 ms | p95 ms | mean batch | chunks/s | errors | model / server / transport ms (median) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for server in args.servers.split(","):
        port = free_port()
        started = time.monotonic()
        process = start(server, checkpoint, port, args.max_batch, args.batch_wait_ms, folder / f"{server}.log")
        print(f"# {server}: listening after {time.monotonic() - started:.0f} s", flush=True)
        try:
            for clients in (int(n) for n in args.clients.split(",")):
                timings: list[dict[str, float]] = []
                latencies, batches, wall_s, errors = run_clients(
                    f"ws://127.0.0.1:{port}", clients, args.requests, args.image_side, timings
                )
                row = RunResult(server, "on", clients, latencies, batches, wall_s, errors).row()
                print(f"{row} {breakdown(timings)} |", flush=True)
        finally:
            stop(process)


if __name__ == "__main__":
    main()
