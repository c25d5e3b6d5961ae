"""`hearth eval`: the full hierarchy (System 2 + System 1) closed-loop in the real MuJoCo sim, end to end."""

from __future__ import annotations

import json
import math

import pytest

from agent.evaluation import (
    EpisodeResult,
    EvalSettings,
    SubtaskReference,
    evaluate,
    markdown_table,
    normalize_subtask,
    overall,
    plan_jobs,
    summarize,
    write_report,
)


def test_normalize_subtask_and_held_out_seeds() -> None:
    assert normalize_subtask("  Pick up  the CAN. ") == "pick up the can"
    assert plan_jobs(["a", "b"], 2, 1000) == [("a", 1000), ("a", 1001), ("b", 1000), ("b", 1001)]


def test_summaries_aggregate_per_task_and_overall() -> None:
    def result(task, success, progress, queries, matches):
        return EpisodeResult(task, 0, success, progress, queries, matches, 10, 1, "x", 0.1)

    results = [result("a", True, 1.0, 4, 3), result("a", False, 0.5, 4, 1), result("b", False, 0.25, 0, 0)]
    by_task = {s.task: s for s in summarize(results)}
    assert by_task["a"].success_rate == 0.5 and by_task["a"].mean_progress == 0.75
    assert by_task["a"].subtask_accuracy == 0.5 and math.isnan(by_task["b"].subtask_accuracy)
    total = overall(results)
    assert total.episodes == 3 and total.success_rate == pytest.approx(1 / 3) and total.subtask_accuracy == 0.5
    table = markdown_table([*summarize(results), total])
    assert "| a | 2 | 50 % | 75 % | 50 % | 10 |" in table and "| b | 1 | 0 % | 25 % | n/a | 10 |" in table


def test_reference_subtask_follows_the_expert_through_a_demonstration() -> None:
    """Along a scripted-expert run the state reference visits the expert's subtasks in the same order."""
    from robots.sim.expert import ScriptedExpert
    from robots.sim.kitchen import SimKitchen

    robot = SimKitchen(task="put the can in the sink", camera_size=16, render=False, seed=1)
    try:
        robot.reset(seed=1)
        expert = ScriptedExpert(robot, seed=1)
        reference_of = SubtaskReference(robot)
        references, labels, agree, ticks = [], [], 0, 0
        while not expert.done and ticks < 900:
            reference = reference_of()
            action, label = expert.act()
            if expert.done:
                break
            agree += int(reference == label)
            for seen, value in ((references, reference), (labels, label)):
                if not seen or seen[-1] != value:
                    seen.append(value)
            robot.act(action)
            ticks += 1
        assert robot.task_success()
        assert reference_of() in ("done", "place the can in the sink")
        assert labels == ["go to the table", "pick up the can", "go to the counter", "place the can in the sink"]
        assert references[:4] == labels and references[4:] in ([], ["done"])  # "done" while the arm retracts
        assert agree / ticks > 0.9, agree / ticks
    finally:
        robot.close()


@pytest.mark.slow
def test_eval_runs_the_full_hierarchy_end_to_end_and_records_episodes(tmp_path) -> None:
    from policy.data.reader import LeRobotDatasetReader
    from policy.inference import Pi05Policy
    from robots.sim.kitchen import SimKitchen

    probe = SimKitchen(camera_size=16, render=False)
    description = probe.describe()
    probe.close()
    policy = Pi05Policy.build_random(
        "tiny",
        camera_names=("head", "wrist"),
        state_names=description.state_names,
        action_names=description.action_names,
        action_horizon=10,
        max_token_len=64,
        robot_type=description.robot_type,
        robot_interface_version=description.interface_version,
    )
    settings = EvalSettings(episodes=1, max_steps=8, execute_steps=4, camera_size=32, record_dir=tmp_path / "episodes")
    jobs = plan_jobs(["put the can in the sink"], 1, 1000)
    seen = []
    results = evaluate(policy, jobs, settings, on_episode=seen.append)
    assert len(results) == 1 and seen == results
    result = results[0]
    assert result.seed == 1000 and result.task == "put the can in the sink"
    assert 0 < result.steps <= 8 and result.subtask_queries >= 1
    assert 0.0 <= result.progress <= 1.0 and result.success is False
    assert len(result.predicted_subtasks) == result.subtask_queries
    reader = LeRobotDatasetReader(tmp_path / "episodes")
    assert len(reader.episodes) == 1
    episode = reader.episodes[0]
    assert episode.length == result.steps and episode.task == "put the can in the sink"
    assert any(e["kind"] == "reference_subtask" and e["text"] == "go to the table" for e in episode.events)
    report = write_report(results, tmp_path / "eval.json", {"checkpoint": "random-tiny"})
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert saved["overall"]["episodes"] == 1 and saved["checkpoint"] == "random-tiny"
    assert report["tasks"][0]["task"] == "put the can in the sink"


def test_hearth_eval_refuses_a_missing_checkpoint_and_an_unknown_task(tmp_path) -> None:
    import sys

    from tests.support import spawn

    cases = [
        (["--checkpoint", str(tmp_path / "nowhere")], "checkpoint folder not found"),
        (["--checkpoint", str(tmp_path), "--task", "fly to the moon"], "unknown task"),
    ]
    for i, (args, message) in enumerate(cases):
        with spawn([sys.executable, "-m", "agent.cli", "eval", *args], tmp_path / f"eval-{i}.log") as process:
            assert process.popen.wait(timeout=120) != 0
            assert message in process.log_text()
