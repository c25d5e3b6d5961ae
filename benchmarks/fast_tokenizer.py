"""FAST action tokenizer: tokens per chunk, compression, reconstruction error, encode/decode throughput.

Data: synthetic recorded-looking chunks (policy/tokenizers/synthetic.py: minimum-jerk arm moves + sensor noise,
near-binary grippers with occasional fast switches), normalized to about [-1, 1]. The tokenizer is fitted on one
seed's chunks and measured on held-out chunks from another seed.

    .venv/bin/python benchmarks/fast_tokenizer.py [--train 2000] [--test 300] [--shapes 50x7,50x14,10x7]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from policy.tokenizers.fast import FastTokenizer
from policy.tokenizers.synthetic import smooth_chunks


def _rate(fn, items, min_seconds: float = 1.0) -> float:
    """Items per second, repeating the pass until ``min_seconds`` have elapsed."""
    done, start = 0, time.perf_counter()
    while True:
        for item in items:
            fn(item)
        done += len(items)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return done / elapsed


def bench_shape(horizon: int, dim: int, n_train: int, n_test: int, vocab_size: int, scale: float) -> None:
    train = smooth_chunks(n_train, horizon, dim, seed=1)
    test = smooth_chunks(n_test, horizon, dim, seed=2)
    start = time.perf_counter()
    tok = FastTokenizer.fit(train, vocab_size=vocab_size, scale=scale)
    fit_s = time.perf_counter() - start

    encoded = [tok.encode(c) for c in test]
    results = [tok.decode(ids, horizon, dim) for ids in encoded]
    failures = sum(not r.ok for r in results)
    errors = np.stack([np.abs(r.actions - c) for r, c in zip(results, test, strict=True) if r.ok])
    lengths = np.array([len(ids) for ids in encoded])

    encode_rate = _rate(tok.encode, list(test))
    start = time.perf_counter()
    tok.encode_batch(test)
    batch_rate = len(test) / (time.perf_counter() - start)
    decode_rate = _rate(lambda ids: tok.decode(ids, horizon, dim), encoded)

    print(f"\n== {horizon}x{dim}  (fit on {n_train} chunks in {fit_s:.2f} s; {tok}) ==")
    print(
        f"tokens/chunk: mean {lengths.mean():.1f}  median {np.median(lengths):.0f}  "
        f"p95 {np.percentile(lengths, 95):.0f}  min {lengths.min()}  max {lengths.max()}"
    )
    print(
        f"compression: {horizon * dim / lengths.mean():.1f} coefficients/token; "
        f"{horizon * dim * 4 / (lengths.mean() * 2):.1f}x vs float32 (2-byte token ids)"
    )
    print(f"decode failures on valid sequences: {failures}/{len(test)}")
    print("abs error per dim, mean: " + " ".join(f"{v:.4f}" for v in errors.mean(axis=(0, 1))))
    print("abs error per dim, max:  " + " ".join(f"{v:.3f}" for v in errors.max(axis=(0, 1))))
    print(f"rms error overall: {np.sqrt((errors**2).mean()):.4f}  (bound per dim: {0.5 / scale:.3f})")
    print(
        f"throughput: encode {encode_rate:.0f} chunks/s, encode_batch {batch_rate:.0f} chunks/s, "
        f"decode {decode_rate:.0f} chunks/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--test", type=int, default=300)
    parser.add_argument("--shapes", default="50x7,50x14,10x7")
    parser.add_argument("--vocab-size", type=int, default=1024)
    parser.add_argument("--scale", type=float, default=10.0)
    args = parser.parse_args()
    for shape in args.shapes.split(","):
        horizon, dim = (int(v) for v in shape.lower().split("x"))
        bench_shape(horizon, dim, args.train, args.test, args.vocab_size, args.scale)


if __name__ == "__main__":
    main()
