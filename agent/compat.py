"""Does a policy fit a robot? One check, shared by `hearth eval`, `hearth serve-policy --robot` and the orchestrator.

A checkpoint records the robot interface it was trained on (policy metadata: ``robot_type``,
``robot_interface_version``, camera/state/action names); a robot states the one it speaks (``RobotDescription``).
They must agree before a single action is executed: the dangerous mismatch is the quiet one, the same number of
dimensions in different units (sim-kitchen v1 commanded base velocities, v2 commands base pose targets).

Rules:
- A named checkpoint without ``robot_interface_version`` predates the key and was trained on version 1.
- Names of the form ``action_0``, ``state_0`` (LeRobot/openpi weights converted without names, random
  mapping-shaped policies) say nothing about meaning: such a checkpoint, without a recorded version, is checked
  on dimension counts only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from robots.types import RobotDescription

ADVICE = "retrain on data recorded from this robot or use a checkpoint that matches it"
_GENERIC = {"action": re.compile(r"action_\d+"), "state": re.compile(r"state_\d+")}


class PolicyMismatchError(ValueError):
    """A policy must not drive this robot; the message names every mismatch and what to do."""


def _generic(kind: str, names: Sequence[str]) -> bool:
    """True when ``names`` carry no meaning (none at all, or ``action_0``, ``action_1``, ...)."""
    return all(_GENERIC[kind].fullmatch(str(name)) for name in names)


def trained_interface_version(policy_metadata: Mapping[str, Any]) -> int | None:
    """The interface version a policy was trained on: its recorded one, 1 for an older named checkpoint, or
    None when unknowable (generic action names and nothing recorded)."""
    version = policy_metadata.get("robot_interface_version")
    if version is not None:
        return int(version)
    return None if _generic("action", list(policy_metadata.get("action_names") or [])) else 1


def _names_problem(what: str, trained: list[str], robot: list[str]) -> str | None:
    if trained == robot:
        return None
    if len(trained) != len(robot):
        return (
            f"{what}: the checkpoint has {len(trained)} ({', '.join(trained)}), "
            f"the robot {len(robot)} ({', '.join(robot)})"
        )
    if sorted(trained) == sorted(robot):
        return f"{what} in another order: checkpoint {', '.join(trained)}; robot {', '.join(robot)}"
    pairs = [f"{a} (robot: {b})" for a, b in zip(trained, robot, strict=True) if a != b]
    return f"{what} differ: {', '.join(pairs)}"


def _dims_problem(what: str, trained: int, robot: int) -> str | None:
    return None if trained == robot else f"{what}: the checkpoint has {trained}, the robot {robot}"


def check_policy_fits_robot(
    policy_metadata: Mapping[str, Any], description: RobotDescription, source: str = "the policy"
) -> None:
    """Raise PolicyMismatchError (a ValueError) unless the policy was trained on the interface this robot speaks.

    ``policy_metadata`` is a checkpoint's metadata (``Pi05Policy.metadata``, config.json) or a policy worker's
    metadata frame; ``source`` names it in the message ("checkpoint runs/x/checkpoint", "policy worker ws://...").
    Checked: interface version and robot type, action names and order, state names, and that every camera the
    policy reads exists on the robot; generic names (see module docstring) only by count.
    """
    actions = [str(n) for n in policy_metadata.get("action_names") or []]
    states = [str(n) for n in policy_metadata.get("state_names") or []]
    cameras = [str(n) for n in policy_metadata.get("camera_names") or []]
    action_dim = len(actions) or int(policy_metadata.get("action_dim") or 0)
    problems: list[str | None] = []
    if _generic("action", actions):
        if action_dim:
            problems.append(_dims_problem("action dims", action_dim, len(description.actions)))
    else:
        problems.append(_names_problem("action names", actions, description.action_names))
    if _generic("state", states):
        if states:
            problems.append(_dims_problem("state dims", len(states), len(description.state)))
    else:
        problems.append(_names_problem("state names", states, description.state_names))
    if not _generic("action", actions):  # converted checkpoints name image slots, not the robot's cameras
        missing = [c for c in cameras if c not in description.camera_names]
        if missing:
            problems.append(
                f"cameras {', '.join(missing)} missing on the robot (it has {', '.join(description.camera_names)})"
            )
    found = [p for p in problems if p]
    trained_type = str(policy_metadata.get("robot_type") or "")
    version = trained_interface_version(policy_metadata)
    version_differs = version is not None and version != description.interface_version
    type_differs = bool(trained_type and description.robot_type and trained_type != description.robot_type)
    speaks = _interface(description.robot_type, description.interface_version)
    if version_differs or type_differs:
        head = (
            f"{source} was trained on {_interface(trained_type, version)}, but robot {description.name} speaks {speaks}"
        )
    elif found:
        head = f"{source} does not fit robot {description.name} ({speaks})"
    else:
        return
    raise PolicyMismatchError(f"{head}{': ' + '; '.join(found) if found else ''}; {ADVICE}")


def _interface(robot_type: str, version: int | None) -> str:
    """E.g. "panda_omron interface v2", "interface v1" or "panda_omron"."""
    return " ".join(part for part in (robot_type, f"interface v{version}" if version is not None else "") if part)


def describe_robot(name: str) -> RobotDescription:
    """The description of a robot named like the CLI names robots: a robot config (configs/robots/<name>.yaml or a
    .yaml path, whose options apply) or a registered robot name. Builds the robot once to ask it, then closes it."""
    from robots.config import CONFIG_DIR, load_robot_config
    from robots.registry import make_robot

    kind, options = name, {}
    if name.endswith((".yaml", ".yml")) or (CONFIG_DIR / f"{name}.yaml").exists():
        config = load_robot_config(Path(name) if name.endswith((".yaml", ".yml")) else name)
        kind, options = config.kind, dict(config.options)
    if kind.startswith("sim-"):
        options["render"] = False  # a description needs no cameras rendered
    robot = make_robot(kind, **options)
    try:
        return robot.describe()
    finally:
        robot.close()
