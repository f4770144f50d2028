"""Where a cluster run's actors go, and whether those nodes can read the files: the plan (one
actor per GPU, else one per node with a CPU), the probe each node runs on a sample of the files
and the model file before a run, and waiting for a cluster's nodes to come up."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from finder.errors import ClusterError

PROBE_FILES = 8  # files each node reads before a run
PROBE_TIMEOUT = 120.0  # seconds for the probe tasks (they wait for a node's worker to start)


@dataclass(frozen=True)
class ClusterPlan:
    """Where the actors run: ``threads`` maps a node id to decode threads per actor there."""

    actors: int
    gpus: bool
    nodes: list[str]
    threads: dict[str, int]
    names: dict[str, str]  # node id → its address, for messages


def plan_actors(nodes: Sequence[dict]) -> ClusterPlan:
    """One actor per GPU when the cluster has GPUs, else one per node with a CPU."""
    alive = [n for n in nodes if n.get("Alive", n.get("alive", False))]
    gpu_nodes = [n for n in alive if n["Resources"].get("GPU", 0) >= 1]
    names = {n["NodeID"]: n.get("NodeManagerAddress", n["NodeID"][:8]) for n in alive}
    if gpu_nodes:
        threads = {
            n["NodeID"]: max(1, int(n["Resources"].get("CPU", 1) // int(n["Resources"]["GPU"])))
            for n in gpu_nodes
        }
        actors = sum(int(n["Resources"]["GPU"]) for n in gpu_nodes)
        return ClusterPlan(actors, True, [n["NodeID"] for n in gpu_nodes], threads, names)
    cpu_nodes = [n for n in alive if n["Resources"].get("CPU", 0) >= 1]
    if not cpu_nodes:
        raise ClusterError("the Ray cluster has no node with a CPU or GPU to embed on")
    threads = {n["NodeID"]: int(n["Resources"]["CPU"]) for n in cpu_nodes}
    return ClusterPlan(len(cpu_nodes), False, [n["NodeID"] for n in cpu_nodes], threads, names)


def probe(paths: list[str], model: str | None) -> tuple[list[tuple[str, str]], bool]:
    """On one node: (files it cannot read, with why), and whether it can read ``model``."""
    bad = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                f.read(1)
        except OSError as e:
            bad.append((path, e.strerror or type(e).__name__))
    model_ok = model is None or os.access(model, os.R_OK)
    return bad, model_ok


def sample(paths: Sequence[str], k: int = PROBE_FILES) -> list[str]:
    """Up to ``k`` paths spread evenly over ``paths`` (the first and the last included)."""
    if len(paths) <= k:
        return list(paths)
    picks = np.linspace(0, len(paths) - 1, k).round().astype(int)
    return [paths[i] for i in dict.fromkeys(picks.tolist())]


def wait_for_nodes(ray: Any, count: int, timeout: float = 60.0) -> None:
    """Wait until the cluster has ``count`` alive nodes (tests and the benchmark use it)."""
    deadline = time.monotonic() + timeout
    while sum(1 for n in ray.nodes() if n.get("Alive")) < count:
        if time.monotonic() > deadline:
            raise ClusterError(f"the Ray cluster did not reach {count} nodes in {timeout:.0f}s")
        time.sleep(0.2)
