"""Build and deploy a fleet on Ray Serve: the model deployment, the WebSocket ingress in front, one address.

Deployment is declarative, the way a Serve config file is (`serve_config` writes exactly that file): the app is
`import_path: policy.fleet.app:app_builder` with the fleet settings as `args`, and the policy to serve lives in the
model deployment's `user_config`. Why: Serve versions an application by its import path and args, so deploying the
same settings with another checkpoint changes only `user_config` — a lightweight update in which every model
replica loads the new checkpoint in place (policy/fleet/model.py `reconfigure`) and the ingress, which holds the
robots' WebSockets, is not touched. (`serve.run` on a built app would give every deployment a new random version
and restart the ingress, dropping every robot.)

Ways in: `hearth serve-policy --ray ...` (deploy, then block), `serve run|deploy <file from --write-serve-config>`,
and tests calling `deploy` on a local Ray instance. The deploy call is what `serve run CONFIG` does
(ray-project/ray python/ray/serve/scripts.py `run`: `_private_api.serve_start` then `client.deploy_apps`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import ray
from ray import serve
from ray.serve import Application
from ray.serve._private import api as serve_private_api
from ray.serve.schema import ServeDeploySchema

from policy.fleet.config import FleetConfig
from policy.fleet.ingress import PolicyIngress
from policy.fleet.model import PolicyModel

logger = logging.getLogger(__name__)

MODEL_DEPLOYMENT = "policy-model"
INGRESS_DEPLOYMENT = "policy-ingress"
IMPORT_PATH = "policy.fleet.app:app_builder"
SERVE_NAMESPACE = "serve"


class FleetDeployError(RuntimeError):
    """Serve reported the application as failed (the message says which deployment and why)."""


def build_app(config: FleetConfig) -> Application:
    """The Serve application: model replicas (batched, health-checked, autoscaled) behind the ingress."""
    scaling: dict[str, Any] = (
        {"autoscaling_config": config.autoscaling} if config.autoscaling else {"num_replicas": config.replicas}
    )
    if config.policy is not None:  # otherwise the config file's deployment override supplies it
        scaling["user_config"] = {"policy": config.policy.model_dump(mode="json")}
    model = serve.deployment(PolicyModel).options(
        name=MODEL_DEPLOYMENT,
        ray_actor_options={"num_gpus": config.gpus_per_replica, "num_cpus": config.cpus_per_replica},
        # room for a full batch waiting while another runs; more would only queue on a busy replica
        max_ongoing_requests=2 * config.max_batch,
        health_check_period_s=config.health_check_period_s,
        health_check_timeout_s=config.health_check_timeout_s,
        **scaling,
    )
    ingress = serve.deployment(PolicyIngress).options(
        name=INGRESS_DEPLOYMENT,
        num_replicas=config.ingress_replicas,
        ray_actor_options={"num_cpus": 0},
        # every open WebSocket is one ongoing request for as long as it lives
        max_ongoing_requests=config.max_connections,
        health_check_period_s=config.health_check_period_s,
        # a robot never hangs up by itself: on shutdown, close its connection soon (its client reconnects)
        graceful_shutdown_wait_loop_s=1.0,
        graceful_shutdown_timeout_s=5.0,
    )
    return ingress.bind(
        model.bind(config.device, config.max_batch, config.batch_wait_ms),
        mapping=config.mapping,
        default_prompt=config.default_prompt,
        api_keys=config.api_keys,
        max_image_side=config.max_image_side,
    )


def app_builder(args: dict[str, Any]) -> Application:
    """Entry point named by Serve config files (`import_path`); `args` is a FleetConfig without the policy."""
    return build_app(FleetConfig.model_validate(args))


def serve_config(config: FleetConfig) -> dict[str, Any]:
    """The Serve config file (ServeDeploySchema) for this fleet: settings as app args, the policy as user_config."""
    if config.policy is None:
        raise ValueError("a fleet needs a policy (checkpoint or random preset)")
    return {
        "proxy_location": "EveryNode",
        "http_options": {"host": config.host, "port": config.port},
        "applications": [
            {
                "name": config.app_name,
                "route_prefix": "/",
                "import_path": IMPORT_PATH,
                "args": config.model_dump(mode="json", exclude={"policy"}),
                "deployments": [
                    {"name": MODEL_DEPLOYMENT, "user_config": {"policy": config.policy.model_dump(mode="json")}}
                ],
            }
        ],
    }


def deploy(
    config: FleetConfig, address: str | None = None, num_cpus: int | None = None, timeout_s: float = 600.0
) -> str:
    """Start (or join, with `address`) Ray and Serve, apply the fleet's config, return the ws:// URL once running.

    Applying it again with another checkpoint is a rollout: model replicas reload in place, connections stay.
    """
    if not ray.is_initialized():
        start_ray(address, num_cpus)
    schema = ServeDeploySchema.model_validate(serve_config(config))
    client = serve_private_api.serve_start(
        http_options=schema.http_options.model_dump(), proxy_location=schema.proxy_location
    )
    client.deploy_apps(schema, _blocking=False)
    wait_running(config.app_name, timeout_s)
    return f"ws://{config.host}:{config.port}"


def start_ray(address: str | None, num_cpus: int | None, attempts: int = 3) -> None:
    """ray.init, retried: Ray gives its own processes a fixed 30 s to register (ray-project/ray
    python/ray/_private/node.py), which a fully loaded small machine can miss."""
    for attempt in range(1, attempts + 1):
        try:
            ray.init(
                address=address,
                namespace=SERVE_NAMESPACE,
                num_cpus=num_cpus,
                include_dashboard=False,
                logging_level=logging.WARNING,
            )
            return
        except Exception as exc:
            if attempt == attempts or "timed out during startup" not in str(exc):
                raise
            logger.warning("Ray did not start (attempt %d of %d): %s; retrying", attempt, attempts, exc)
            ray.shutdown()


def wait_running(app_name: str, timeout_s: float) -> None:
    """Block until Serve reports the application RUNNING; raise with Serve's own message if it failed."""
    deadline = time.monotonic() + timeout_s
    time.sleep(0.5)  # let the controller pick up the new config before its status is read
    while True:
        app = serve.status().applications.get(app_name)
        status = getattr(app, "status", None)
        if status == "RUNNING":
            return
        if status in ("DEPLOY_FAILED", "UNHEALTHY"):
            raise FleetDeployError(f"Serve application {app_name!r} is {status}: {app.message}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"Serve application {app_name!r} not running after {timeout_s:.0f}s (status {status})")
        time.sleep(0.5)
