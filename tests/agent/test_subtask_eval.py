"""System-1 isolation (`hearth eval --per-subtask`): each subtask starts from the expert's state with its text.

Two reference policies bound what the harness can report: one that hands control back to the scripted expert
(every subtask must succeed from the handed-over state), and one that holds still (none may).
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np

from agent.subtask_eval import GOTO_XY, GOTO_YAW, evaluate_subtasks, expert_segments, summarize_subtasks
from robots.sim.expert import ScriptedExpert
from robots.sim.kitchen import SimKitchen

TASK = "put the can in the sink"


class ExpertAsPolicy:
    """Answers each chunk request with the scripted expert's next action, the expert built from the state the
    harness handed over (so a broken handover, e.g. a wrong start tick, shows up as a failure)."""

    def __init__(self) -> None:
        self.metadata = {"camera_names": ["head"]}
        self.robot = None
        self.expert: ScriptedExpert | None = None
        self.subtask: str | None = None
        self.prompts: list[str] = []

    def act(self, obs, subtask: str):
        self.prompts.append(subtask)
        if self.expert is None or subtask != self.subtask or self.expert.done:
            self.expert = ScriptedExpert(self.robot, noise=0.0, seed=0)
            self.subtask = subtask
        action, _label = self.expert.act()
        return SimpleNamespace(actions=np.asarray(action)[None])


class HoldStill:
    metadata = {"camera_names": ["head"]}

    def __init__(self) -> None:
        self.robot = None

    def act(self, obs, subtask: str):
        return SimpleNamespace(actions=np.asarray(self.robot.hold_action())[None].repeat(5, axis=0))


def run(policy, monkeypatch, execute_steps: int):
    """The harness builds its own robot; the reference policies get a handle on it through make_robot."""
    import robots.registry as registry

    original = registry.make_robot

    def make_robot(*args, **kwargs):
        policy.robot = original(*args, **kwargs)
        return policy.robot

    monkeypatch.setattr(registry, "make_robot", make_robot)
    return evaluate_subtasks(policy, [TASK], episodes=1, seed_offset=1000, camera_size=32, execute_steps=execute_steps)


def test_expert_segments_are_the_tasks_subtasks_in_order() -> None:
    robot = SimKitchen(task=TASK, render=False)
    try:
        segments = expert_segments(robot, TASK, 1000)
    finally:
        robot.close()
    assert [s for s, _, _ in segments] == [
        "go to the table",
        "pick up the can",
        "go to the counter",
        "place the can in the sink",
    ]
    starts = [start for _, start, _ in segments]
    assert starts[0] == 0 and all(b > a for a, b in itertools.pairwise(starts))
    assert all(count > 5 for _, _, count in segments)


def test_handing_each_subtask_to_the_expert_succeeds(monkeypatch) -> None:
    policy = ExpertAsPolicy()
    results = run(policy, monkeypatch, execute_steps=1)
    assert [r.kind for r in results] == ["go_to", "pick", "go_to", "place"]
    assert all(r.success for r in results), [(r.subtask, r.ticks, r.expert_ticks) for r in results]
    assert set(policy.prompts) == {r.subtask for r in results}  # System 1 got the expert's own subtask text
    summary = summarize_subtasks(results)
    assert summary["pick"] == {"n": 1, "success": 1.0} and summary["go_to"]["n"] == 2
    # the diagnostics say how close it got: the expert lines up to 6 mm before it closes the gripper
    go_to, pick = results[0], results[1]
    assert go_to.detail["xy_error"] < GOTO_XY and abs(go_to.detail["yaw_error"]) < GOTO_YAW
    assert pick.detail["lineup_error"] < 0.01 and pick.detail["descent_error"] < 0.01  # lined up before it went down


def test_a_policy_that_holds_still_fails_every_subtask(monkeypatch) -> None:
    results = run(HoldStill(), monkeypatch, execute_steps=5)
    assert len(results) == 4 and not any(r.success for r in results)
    for r in results:
        assert r.ticks >= 3 * r.expert_ticks  # it got the whole budget
    assert results[0].detail["xy_error"] > GOTO_XY  # still where the episode started
    assert "lineup_error" not in results[1].detail  # it never closed the gripper
    assert "descent_error" not in results[1].detail  # nor brought the hand down
