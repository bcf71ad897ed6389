"""Joining or starting a Ray cluster for the scale-out engines; Ray itself is an optional extra.

Ray is imported here and only here, when an engine asks for it, so that `import moee_pipeline`,
the local engines and scoring machines never pay for it (or need it installed).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType

from moee_pipeline.errors import MoeeError, first_line
from moee_pipeline.verbosity import library_output_shown

logger = logging.getLogger(__name__)

INSTALL_HINT = "Ray is not installed: pip install -e .[ray]"


class RayClusterError(MoeeError, RuntimeError):
    """Ray is missing, unreachable or lacks the resources asked for; the message says what to do."""


def require_ray() -> ModuleType:
    """The `ray` module, or one line saying how to install it."""
    try:
        import ray
        import ray.data
    except ImportError as error:
        raise RayClusterError(INSTALL_HINT) from error
    return ray


@contextmanager
def ray_session(address: str | None = None) -> Iterator[ModuleType]:
    """A connected `ray`: an already initialised one as is, else join `address` or start locally.

    `address` None starts a local instance (one machine, all its CPUs and GPUs); `auto` joins
    the cluster this machine belongs to; `host:6379` or `ray://host:10001` a remote one. Only
    an instance started here is shut down on exit.
    """
    ray = require_ray()
    check_address(address)
    if ray.is_initialized():
        with _quiet_ray_data():
            yield ray
        return
    level = logging.INFO if library_output_shown() else logging.ERROR  # -v: Ray's chatter too
    try:
        ray.init(address=address, logging_level=level, log_to_driver=True)
    except Exception as error:  # ConnectionError, a missing ray[client], a bad address ...
        where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
        logger.info("ray.init(address=%r): %s", address, error)
        first = first_line(error, limit=80)
        raise RayClusterError(
            f"cannot connect to {where} ({first}); start one with `ray start --head` "
            "or check --ray-address"
        ) from None
    try:
        with _quiet_ray_data():
            yield ray
    finally:
        ray.shutdown()


@contextmanager
def _quiet_ray_data() -> Iterator[None]:
    """Ray Data logs its execution plan and warns that its bars are off (ours is the bar) to
    the terminal itself, not through the root logger: only errors unless `-v`."""
    log = logging.getLogger("ray.data")
    level = log.level
    if not library_output_shown():
        log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def check_address(address: str | None, timeout: float = 5.0) -> None:
    """Fail in seconds on an address nothing listens on (Ray itself retries for minutes).

    None (start a local instance) and `auto` (this machine's cluster) pass: Ray finds those.
    """
    if not address or address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise RayClusterError(f"--ray-address {address!r}: use auto, host:6379 or ray://host:10001")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as error:
        raise RayClusterError(
            f"cannot reach the Ray cluster at {address!r} ({error.strerror or error}); "
            "start one with `ray start --head` or check --ray-address"
        ) from None


def moee_cause(error: BaseException) -> MoeeError | None:
    """The user-fixable error a Ray worker raised, found through Ray's wrappers (RayTaskError
    keeps it as `cause`), so the CLI shows its one line instead of Ray's traceback."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, MoeeError):
            return current
        cause = getattr(current, "cause", None)
        current = cause if isinstance(cause, BaseException) else current.__cause__
    return None


@dataclass(frozen=True)
class ClusterResources:
    """What the cluster offers: CPUs and GPUs in all, and the most GPUs on a single node."""

    cpus: float
    gpus: float
    max_gpus_per_node: float


def cluster_resources(ray: ModuleType) -> ClusterResources:
    """The live nodes' resources (a worker's GPUs must all sit on one node)."""
    total = ray.cluster_resources()
    per_node = [n.get("Resources", {}).get("GPU", 0.0) for n in ray.nodes() if n.get("Alive")]
    return ClusterResources(
        cpus=float(total.get("CPU", 0.0)),
        gpus=float(total.get("GPU", 0.0)),
        max_gpus_per_node=float(max(per_node, default=0.0)),
    )


def resolve_gpus_per_worker(
    requested: float | None, *, workers: int, resources: ClusterResources
) -> float:
    """The GPUs each worker gets: as asked, else 1 on a cluster with GPUs and 0 without.

    Raises:
        RayClusterError: more GPUs per worker than any node has, or more in all than the
            cluster has (the workers would wait forever); raised before any model loads.
    """
    gpus = (1.0 if resources.gpus > 0 else 0.0) if requested is None else float(requested)
    if gpus < 0:
        raise RayClusterError(f"--gpus-per-worker {gpus:g}: must be 0 or more")
    if gpus > resources.max_gpus_per_node:
        raise RayClusterError(
            f"--gpus-per-worker {gpus:g} is more than any node of the Ray cluster has "
            f"({resources.max_gpus_per_node:g} GPUs at most); lower it"
        )
    if gpus * workers > resources.gpus:
        raise RayClusterError(
            f"--workers {workers} x --gpus-per-worker {gpus:g} needs {gpus * workers:g} GPUs "
            f"but the Ray cluster has {resources.gpus:g}; lower --workers"
        )
    return gpus
