"""Build the real robot runtimes of a deployment (robots, policy client, System 2, recorder, one shared bus).

Used by `hearth serve-api`; tests build their own runtimes and pass them to create_app. Heavy modules (MuJoCo,
video writers) are imported here, never at `hearth --help` time.
"""

from __future__ import annotations

import logging
from typing import Any

from agent.settings import DeploymentConfig

logger = logging.getLogger(__name__)


def build_runtimes(config: DeploymentConfig) -> tuple[dict[str, Any], Any]:
    """robot id -> RobotRuntime (not started) and the EventBus they publish to."""
    from pydantic import ValidationError

    from agent.config import ConfigError, format_validation_error
    from agent.events import EventBus
    from agent.orchestrator import OrchestratorConfig, RobotRuntime
    from agent.system2 import make_system2
    from policy.client import PolicyClient
    from robots.registry import make_robot

    bus = EventBus()
    runtimes: dict[str, Any] = {}
    try:
        orchestrator = OrchestratorConfig(**{"every_k_chunks": config.system2.every_k_chunks, **config.orchestrator})
    except ValidationError as exc:
        raise ConfigError(format_validation_error("deployment section 'orchestrator'", exc)) from None
    for entry in config.robots:
        if entry.id in runtimes:
            raise ValueError(f"robot id {entry.id!r} appears twice in deployment {config.name!r}")
        robot = make_robot(entry.kind, **entry.options)
        policy = PolicyClient(config.policy.url, api_key=config.policy.api_key, timeout_s=config.policy.timeout_s)
        # System 2 gets its own connection so chunk requests never queue behind a subtask decode
        s2_client = (
            PolicyClient(config.policy.url, api_key=config.policy.api_key, timeout_s=config.system2.timeout_s)
            if config.system2.backend == "local"
            else None
        )
        system2 = make_system2(
            config.system2.backend,
            policy_client=s2_client,
            openai_url=config.system2.openai_url,
            openai_model=config.system2.openai_model,
            openai_api_key=config.system2.openai_api_key,
            timeout_s=config.system2.timeout_s,
        )
        recorder = _recorder(config, entry.id, robot)
        budget = None
        if config.policy.checkpoint is not None:
            from agent.prompt_budget import TokenizerBudget

            budget = TokenizerBudget.from_checkpoint(config.policy.checkpoint, len(robot.describe().state))
        runtimes[entry.id] = RobotRuntime(
            entry.id, robot, policy, system2, recorder, bus, orchestrator, prompt_budget=budget
        )
        logger.info("robot runtime built", extra={"robot_id": entry.id, "kind": entry.kind})
    return runtimes, bus


def _recorder(config: DeploymentConfig, robot_id: str, robot: Any) -> Any:
    """An EpisodeRecorder at the deployment's episodes_root(<robot id>); without one the robot still runs."""
    try:
        from agent.recorder import EpisodeRecorder
    except ImportError:
        logger.warning("episode recorder unavailable: episodes will not be recorded", exc_info=True)
        return None
    return EpisodeRecorder(config.episodes_root(robot_id), robot.describe())
