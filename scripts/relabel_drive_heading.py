"""Rewrite prepared sim-kitchen data's drive heading targets to the goal heading (agent/sim_relabel.py).

    .venv/bin/python scripts/relabel_drive_heading.py --data runs/s1/data --out runs/s1-goalyaw/data

Why a script: the stage-1 frames (128k, 8 GB prepared) were recorded before the expert's drives asked for the
goal heading; relabelling them takes a minute, collecting them again an hour.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a prepared data folder (arrays.npz, dataset.json)")
    parser.add_argument("--out", type=Path, required=True, help="where the relabelled prepared data goes")
    args = parser.parse_args()

    from agent.sim_relabel import drive_heading_labels
    from policy.train import PreparedData, is_prepared_data

    if not is_prepared_data(args.data):
        parser.error(f"{args.data} is not a prepared data folder (no arrays.npz and dataset.json)")
    if args.out.resolve() == args.data.resolve():
        parser.error("--out must differ from --data (the original is kept)")
    start = time.time()
    prepared = PreparedData.load(args.data)
    relabelled = drive_heading_labels(prepared)
    relabelled.save(args.out, compress=False)
    summary = {
        "data": str(args.data),
        "out": str(args.out),
        "frames": len(relabelled.arrays),
        "go_to_frames": relabelled.meta["go_to_frames"],
        "seconds": round(time.time() - start, 1),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
