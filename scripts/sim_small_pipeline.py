"""Collect expert demonstrations in parallel, train sim-small, evaluate it: one command, one output folder.

Why this exists beside `hearth collect` + `hearth train` + `hearth eval` (which scripts/train_gpu.sh uses): on a
rented accelerator machine with minutes of budget and no video codec or robosuite installed, this pipeline keeps
every frame in memory (no video encode/decode round trip), runs the simulator from a precompiled MuJoCo model
(`--mjb`, made with `--export-mjb` on a machine that has robosuite), and uses every CPU core for the simulator
while the GPU trains. The training step, the data encoding and the evaluation protocol are the same code as the
hearth commands (policy.train, policy.training.data, agent.evaluation).

    python scripts/sim_small_pipeline.py --out runs/sim-small --config configs/training/sim-small-gpu.yaml \\
        --episodes 240 --workers 14 --eval-episodes 10
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

logger = logging.getLogger("sim_small_pipeline")


def use_mjb(path: str | None) -> None:
    """Make SimKitchen load the precompiled model instead of composing robosuite's MJCF (no robosuite needed)."""
    if not path:
        return
    import mujoco

    from robots.sim import scene

    model_path = str(path)
    scene.build_scene_xml = lambda *args, **kwargs: ""  # the composed XML is not needed: the binary replaces it
    mujoco.MjModel.from_xml_string = staticmethod(lambda xml, assets=None: mujoco.MjModel.from_binary_path(model_path))


# line-up starts stay inside the work zone's 0.25 rad, so the expert picks without driving "go to" first
LINEUP_HEADING_SPREAD = 0.2


def collect_worker(args: tuple) -> list[dict]:
    jobs, camera_size, image_size, max_steps, mjb, heading_spread, lineup = args
    use_mjb(mjb)
    import torch

    torch.set_num_threads(1)
    from policy.training.data import resize_uint8
    from robots.sim.expert import ScriptedExpert, start_near
    from robots.sim.kitchen import SimKitchen
    from robots.sim.tasks import FURNITURE_OF

    robot = SimKitchen(task=jobs[0][1], camera_size=camera_size, seed=jobs[0][0])
    episodes = []
    try:
        for done, (seed, task, noise, mid_task) in enumerate(jobs):
            robot.set_task(task)
            obs = robot.reset(seed)
            if mid_task:  # begin at the first object's furniture, perturbed: line-up and recovery data
                rng = np.random.default_rng(seed)
                start_near(robot, FURNITURE_OF[robot.spec.moves[0].source], rng, heading_spread)
                obs = robot.observe()
            expert = ScriptedExpert(robot, noise=noise, seed=seed)
            if lineup:  # the arm already hovers: the base lines up under it (ScriptedExpert.start_with_arm_at_hover)
                expert.start_with_arm_at_hover()
                obs = robot.observe()
            images = {c: [] for c in robot.cameras}
            states, actions, labels = [], [], []
            while len(actions) < max_steps:
                executed, label = expert.act()
                if expert.done or (lineup and labels and labels[-1].startswith("pick up") and label != labels[-1]):
                    break  # a line-up episode ends with its first pick
                for camera, frames in images.items():
                    frames.append(resize_uint8(obs.images[camera], image_size))
                states.append(obs.state)
                actions.append(np.asarray(expert.last_clean_action, np.float32))  # DART: record the correction
                labels.append(label)
                robot.act(executed)
                obs = robot.observe()
            episodes.append(
                {
                    "seed": seed,
                    "task": task,
                    "noise": noise,
                    "mid_task": mid_task,
                    # a line-up episode succeeds when it holds its first object
                    "success": bool(robot.held_object == robot.spec.moves[0].obj if lineup else robot.task_success()),
                    "images": {c: np.stack(f) for c, f in images.items()},
                    "states": np.stack(states).astype(np.float32),
                    "actions": np.stack(actions),
                    "labels": labels,
                    "state_names": robot.describe().state_names,
                    "action_names": robot.describe().action_names,
                    "control_hz": robot.control_hz,
                    "interface_version": robot.describe().interface_version,
                }
            )
            print(
                f"collected {done + 1}/{len(jobs)}: seed {seed} {task!r} {len(actions)} frames "
                f"success={episodes[-1]['success']}",
                flush=True,
            )
    finally:
        robot.close()
    return episodes


def eval_worker(args: tuple) -> list[dict]:
    checkpoint, jobs, settings, mjb = args
    use_mjb(mjb)
    import dataclasses

    import torch

    torch.set_num_threads(1)
    from agent.evaluation import EvalSettings, evaluate
    from policy.inference import Pi05Policy

    policy = Pi05Policy.from_checkpoint(checkpoint, device="cpu")
    results = evaluate(policy, jobs, EvalSettings(**settings))
    return [dataclasses.asdict(r) for r in results]


def split(items: list, parts: int) -> list[list]:
    return [items[i::parts] for i in range(parts) if items[i::parts]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--config", type=Path, default=Path("configs/training/sim-small-gpu.yaml"))
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    parser.add_argument("--noise", type=float, default=0.3, help="expert noise on every other episode (DART)")
    parser.add_argument("--camera-size", type=int, default=96)
    parser.add_argument("--max-steps", type=int, default=1200)
    parser.add_argument("--eval-episodes", type=int, default=10, help="per task; 0 skips evaluation")
    parser.add_argument("--eval-max-steps", type=int, default=900)
    parser.add_argument("--mjb", default=None, help="precompiled MuJoCo model of the kitchen (see --export-mjb)")
    parser.add_argument("--export-mjb", type=Path, default=None, help="write the compiled kitchen model and exit")
    parser.add_argument(
        "--train-seconds",
        type=float,
        default=None,
        help="calibrate the step time on this machine, then set steps to fill this budget",
    )
    parser.add_argument("--collect-only", action="store_true", help="stop after collecting and preparing the data")
    parser.add_argument(
        "--init",
        type=Path,
        default=None,
        help="warm start from this checkpoint (fresh optimizer; its norm stats are kept)",
    )
    parser.add_argument("--seed-offset", type=int, default=0, help="first collection seed (held-out seeds are 1000+)")
    parser.add_argument("--set", action="append", default=[], help="config override key=value (YAML value)")
    parser.add_argument(
        "--recovery",
        action="store_true",
        help="every episode starts at the first object's furniture with a heading error up to pi: go-to recovery data",
    )
    parser.add_argument(
        "--lineup",
        action="store_true",
        help="every episode starts beside its first object with the arm already hovering and ends with that pick: "
        "line-up data where the hand must wait for the base",
    )
    args = parser.parse_args()
    if args.recovery and args.lineup:
        parser.error("--recovery and --lineup are different starts; collect them as separate sets")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    if args.export_mjb:
        import mujoco

        from robots.sim import scene

        model = mujoco.MjModel.from_xml_string(scene.build_scene_xml(args.camera_size, 0.005))
        mujoco.mj_saveModel(model, str(args.export_mjb), None)
        print(f"wrote {args.export_mjb}")
        return 0

    import yaml

    from policy.training.config import TrainConfig

    config_data = yaml.safe_load(args.config.read_text())
    for item in args.set:
        key, value = item.split("=", 1)
        node = config_data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(value)
    config = TrainConfig.model_validate(config_data)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    context = multiprocessing.get_context("spawn")

    from policy.model.config import preset

    model_config = preset(config.model.preset, **config.model.overrides)
    data_dir = out / "data"
    from policy.train import is_prepared_data

    if not is_prepared_data(data_dir):
        from robots.sim.tasks import TASKS

        started = time.monotonic()
        # every other episode with expert noise (DART), every third one starting mid-task at the first object
        jobs = [
            (
                args.seed_offset + j,
                TASKS[j % len(TASKS)],
                args.noise if j % 2 else 0.0,
                args.recovery or args.lineup or j % 3 == 2,
            )
            for j in range(args.episodes)
        ]
        if any(seed >= 1000 for seed, *_ in jobs):
            raise SystemExit("collection seeds must stay below 1000: seeds 1000+ are held out for evaluation")
        with context.Pool(args.workers) as pool:
            chunks = pool.map(
                collect_worker,
                [
                    (
                        part,
                        args.camera_size,
                        model_config.vision.image_size,
                        args.max_steps,
                        args.mjb,
                        math.pi if args.recovery else LINEUP_HEADING_SPREAD if args.lineup else 0.35,
                        args.lineup,
                    )
                    for part in split(jobs, args.workers)
                ],
            )
        episodes = sorted((e for chunk in chunks for e in chunk), key=lambda e: e["seed"])
        failed = [e["seed"] for e in episodes if not e["success"]]
        if failed:  # e.g. an object knocked off the furniture: not a demonstration of the task
            logger.info("dropping %d failed expert episodes (seeds %s)", len(failed), failed)
            episodes = [e for e in episodes if e["success"]]
        timings["collect_s"] = time.monotonic() - started
        frames = sum(len(e["actions"]) for e in episodes)
        successes = sum(e["success"] for e in episodes)
        logger.info(
            "collected %d episodes, %d frames, %d successful in %.0fs",
            len(episodes),
            frames,
            successes,
            timings["collect_s"],
        )
        started = time.monotonic()
        prepared = prepare_from_episodes(episodes, config, model_config, args)
        prepared.save(data_dir, compress=False)
        timings["prepare_s"] = time.monotonic() - started
        del episodes, chunks, prepared

    if args.collect_only:
        print(json.dumps(timings), flush=True)
        return 0
    from policy.train import train

    if args.train_seconds and not (out / "run" / "train_state").exists():
        config = calibrate_steps(config, data_dir, out, args.train_seconds, timings)
    started = time.monotonic()
    result = train(
        config, data_dir, out / "run", resume=(out / "run" / "train_state").exists(), progress=False, init=args.init
    )
    timings["train_s"] = time.monotonic() - started
    print(
        f"checkpoint: {result.checkpoint} after {result.steps} steps ({result.samples_per_s:.0f} samples/s)", flush=True
    )
    summary = {
        "timings": timings,
        "steps": result.steps,
        "train_metrics": result.final_metrics,
        "data": json.loads((data_dir / "dataset.json").read_text()),
    }
    summary["data"].pop("subtasks", None)
    if args.eval_episodes > 0 and result.checkpoint is not None:
        from agent.evaluation import EpisodeResult, plan_jobs, write_report
        from robots.sim.tasks import TASKS

        started = time.monotonic()
        jobs = plan_jobs(TASKS, args.eval_episodes, 1000)
        settings = {
            "episodes": args.eval_episodes,
            "max_steps": args.eval_max_steps,
            "execute_steps": 25,
            "camera_size": args.camera_size,
        }
        with context.Pool(min(args.workers, len(jobs))) as pool:
            parts = pool.map(
                eval_worker, [(str(result.checkpoint), part, settings, args.mjb) for part in split(jobs, args.workers)]
            )
        results = [EpisodeResult(**r) for part in parts for r in part]
        timings["eval_s"] = time.monotonic() - started
        report = write_report(results, out / "eval.json", {"checkpoint": str(result.checkpoint), "settings": settings})
        print(report["table"], flush=True)
        summary["eval"] = report["overall"]
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    print(json.dumps(timings), flush=True)
    return 0


def encode_worker(args: tuple) -> dict[str, np.ndarray]:
    """Tokenize one episode's System-1 and System-2 examples (the slow, CPU-bound part of data preparation)."""
    encoder, states, actions, labels, task, horizon, frame = args
    from policy.training.data import episode_samples

    out: dict[str, list] = {
        k: []
        for k in (
            "actions",
            "action_is_pad",
            "s1_tokens",
            "s1_mask",
            "s1_loss",
            "s2_tokens",
            "s2_mask",
            "s2_loss",
            "has_subtask",
            "states",
        )
    }
    for sample in episode_samples({}, states, actions, labels, task, horizon, frame):
        ex1, ex2, padded = encoder.encode(sample)
        out["states"].append(encoder.normalized_state(sample))  # for the continuous state token
        out["actions"].append(padded)
        out["action_is_pad"].append(sample.action_is_pad)
        out["s1_tokens"].append(ex1.tokens)
        out["s1_mask"].append(ex1.mask)
        out["s1_loss"].append(ex1.loss_mask)
        ex2 = ex2 or type(ex1)(np.zeros_like(ex1.tokens), np.zeros_like(ex1.mask), np.zeros_like(ex1.loss_mask))
        out["s2_tokens"].append(ex2.tokens)
        out["s2_mask"].append(ex2.mask)
        out["s2_loss"].append(ex2.loss_mask)
        out["has_subtask"].append(bool(ex2.mask.any()))
    return {k: np.stack(v) for k, v in out.items()}


def calibrate_steps(config, data_dir: Path, out: Path, seconds: float, timings: dict):
    """Time real steps 10..30 (after warm-up), then size the run to fill `seconds`."""
    import shutil

    from policy.train import train

    probe_steps = 30
    probe = config.model_copy(
        update={
            "steps": probe_steps,
            "save_every": 10_000,
            "log_every": probe_steps,
            "time_limit_s": None,
            "name": "calibration",
        }
    )
    started = time.monotonic()
    stamps: dict[int, float] = {}
    train(
        probe,
        data_dir,
        out / "calibration",
        progress=False,
        on_step=lambda step, values: stamps.__setitem__(step, time.monotonic()),
    )
    per_step = (stamps[probe_steps] - stamps[10]) / (probe_steps - 10)  # steady state, warm-up excluded
    shutil.rmtree(out / "calibration", ignore_errors=True)
    steps = max(100, int(seconds / per_step))
    timings["calibration_s"] = time.monotonic() - started
    timings["calibrated_step_s"] = per_step
    logger.info("calibration: %.3f s/step -> %d steps for %.0f s", per_step, steps, seconds)
    return config.model_copy(
        update={"steps": steps, "time_limit_s": seconds * 1.2, "save_every": max(min(config.save_every, steps // 2), 1)}
    )


def prepare_from_episodes(episodes: list[dict], config, model_config, args):
    from policy.action_frame import ActionFrame
    from policy.normalize import NormStats
    from policy.tokenizers.text import household_tokenizer
    from policy.train import PreparedData, _fit_fast
    from policy.training.batching import ExampleEncoder
    from policy.training.data import TrainingArrays, episode_samples

    tokenizer = household_tokenizer()
    horizon = model_config.action_horizon
    frame_spec = config.data.action_frame.as_metadata() if config.data.action_frame else None
    frame = ActionFrame.from_spec(frame_spec, episodes[0]["action_names"], episodes[0]["state_names"])
    chunks = [
        s
        for e in episodes
        for s in episode_samples({}, e["states"], e["actions"], e["labels"], e["task"], horizon, frame)
    ]
    steps = np.concatenate([s.actions[~s.action_is_pad] for s in chunks])  # targets in the model's frame
    norm_stats = NormStats.from_arrays({"state": np.concatenate([e["states"] for e in episodes]), "actions": steps})
    del chunks, steps
    if args.init is not None:  # a warm start keeps the normalization its weights were trained with
        init_stats = NormStats.load(args.init / "norm_stats.json")
        init_frame = json.loads((args.init / "config.json").read_text()).get("action_frame")
        same_frame = (init_frame or None) == frame_spec
        norm_stats = NormStats(
            {"state": init_stats["state"], "actions": (init_stats if same_frame else norm_stats)["actions"]}
        )
    fit_samples = []
    rng = np.random.default_rng(config.seed)
    for e in episodes:  # FAST is fitted on chunks only: no images needed
        picks = rng.choice(len(e["actions"]), size=min(20, len(e["actions"])), replace=False)
        chunked = episode_samples({}, e["states"], e["actions"], e["labels"], e["task"], horizon, frame)
        fit_samples.extend((e["seed"], chunked[i]) for i in picks)
    fast = _fit_fast(fit_samples, norm_stats, config) if config.loss.fast_ce else None
    encoder = ExampleEncoder(
        tokenizer,
        norm_stats,
        config.loss.max_token_len or model_config.max_token_len,
        model_config.max_action_dim,
        config.loss,
        fast,
        max_state_dim=model_config.max_state_dim,
    )
    context = multiprocessing.get_context("spawn")
    with context.Pool(args.workers) as pool:
        encoded = pool.map(
            encode_worker,
            [(encoder, e["states"], e["actions"], e["labels"], e["task"], horizon, frame) for e in episodes],
            chunksize=4,
        )
    cameras = list(episodes[0]["images"])

    def cat(key: str) -> np.ndarray:
        return np.concatenate([part[key] for part in encoded])

    arrays = TrainingArrays(
        camera_names=cameras,
        images=np.concatenate([np.stack([e["images"][c] for c in cameras], axis=1) for e in episodes]),
        actions=cat("actions"),
        action_dim=norm_stats["actions"].dim,
        action_is_pad=cat("action_is_pad"),
        s1_tokens=cat("s1_tokens"),
        s1_mask=cat("s1_mask"),
        s1_loss=cat("s1_loss"),
        s2_tokens=cat("s2_tokens"),
        s2_mask=cat("s2_mask"),
        s2_loss=cat("s2_loss"),
        has_subtask=cat("has_subtask"),
        states=cat("states"),
        episode_index=np.concatenate([np.full(len(e["actions"]), e["seed"]) for e in episodes]),
    )
    meta = {
        "camera_names": cameras,
        "state_names": episodes[0]["state_names"],
        "action_names": episodes[0]["action_names"],
        "control_hz": episodes[0]["control_hz"],
        "robot_type": "panda_omron",
        "robot_interface_version": episodes[0]["interface_version"],
        "action_frame": frame_spec,
        "episodes": len(episodes),
        "successful_episodes": sum(e["success"] for e in episodes),
        "frames": len(arrays),
        "tasks": sorted({e["task"] for e in episodes}),
        "subtasks": sorted({label for e in episodes for label in e["labels"]}),
        "source": f"scripted expert, seeds {min(e['seed'] for e in episodes)}..{max(e['seed'] for e in episodes)}, "
        f"noise {args.noise} on odd seeds, camera {args.camera_size} px"
        + (", every episode a heading-recovery start" if args.recovery else "")
        + (
            ", every episode a line-up start (arm at hover, beside the object) ending with its first pick"
            if args.lineup
            else ""
        ),
        "image_size": model_config.vision.image_size,
        "action_horizon": model_config.action_horizon,
    }
    return PreparedData(arrays, norm_stats, tokenizer, fast, meta)


if __name__ == "__main__":
    sys.exit(main())
