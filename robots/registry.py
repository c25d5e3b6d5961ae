"""Robot registry: configs and the CLI name robots ("sim-kitchen"), this module builds them.

Factories are registered lazily (a callable that imports its heavy modules when called) so that importing the
registry never pulls in MuJoCo or robosuite.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from robots.base import Robot

logger = logging.getLogger(__name__)

_FACTORIES: dict[str, Callable[..., Robot]] = {}
_LOCK = threading.Lock()


class UnknownRobotError(ValueError):
    """Raised for a robot name nobody registered; the message lists the known names."""


def register_robot(name: str, factory: Callable[..., Robot]) -> None:
    """Register ``factory(**options) -> Robot`` under ``name`` (re-registering replaces, with a log line)."""
    if not name or not isinstance(name, str):
        raise ValueError(f"robot name must be a non-empty string, got {name!r}")
    with _LOCK:
        if name in _FACTORIES:
            logger.info("replacing robot factory %r", name)
        _FACTORIES[name] = factory


def available_robots() -> list[str]:
    """Names that ``make_robot`` accepts, sorted."""
    with _LOCK:
        return sorted(_FACTORIES)


def make_robot(name: str, **options: object) -> Robot:
    """Build the robot registered as ``name`` with ``options`` (e.g. task=, camera_size=, cameras=, seed=)."""
    with _LOCK:
        factory = _FACTORIES.get(name)
    if factory is None:
        raise UnknownRobotError(f"unknown robot {name!r}; known robots: {', '.join(available_robots()) or '(none)'}")
    return factory(**options)


def _make_sim_kitchen(**options: object) -> Robot:
    from robots.sim.kitchen import SimKitchen

    return SimKitchen(**options)  # type: ignore[arg-type]


register_robot("sim-kitchen", _make_sim_kitchen)


def _make_bridge(**options: object) -> Robot:
    from robots.bridge import BridgeRobot

    return BridgeRobot(**options)  # type: ignore[arg-type]


register_robot("bridge", _make_bridge)
