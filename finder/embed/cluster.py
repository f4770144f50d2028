"""Embed on a Ray cluster: an index run's pending files as a Ray Dataset, decoded and embedded
on a pool of actors, the results streamed back to the library's single writer.

    source = RaySource("auto", info)    # imports Ray (a one-line hint when it is missing)
    results = source.embed(items)        # (id, vector, error, facts) for finder.sync.store_results
    ...
    source.close()                       # shuts down a cluster it started; leaves others running

``address``: ``None`` or ``"local"`` starts a Ray instance on this machine for the run;
``"auto"`` joins the cluster that ``ray start`` made here; ``host:port`` or ``ray://host:port``
joins that one. A driver that is already connected (``ray.init`` called by the caller) is used
as it is.

The dataset is ``from_blocks`` over (id, path) blocks → ``map_batches(Embedder)`` on an actor
pool → ``iter_batches`` in the driver. Each actor rebuilds the library's recorded backbone once
(``registry.from_info``: the same model file or weights, checked by fingerprint) and runs
:func:`finder.embed.pipeline.embed_paths` on each batch it is given: the same decoding, views,
model calls and photo facts as a local run, so a cluster run gives the same vectors. Two calls
run at once in an actor so that one decodes while the other embeds; the model runs one call at
a time.

Actors: with GPUs in the cluster, one per GPU (``num_gpus=1``, the backbone picks its batch
size per device); otherwise one per node (Ray Data spreads them), decoding with as many threads
as the node has CPUs. The finder package is shipped to the workers of a joined cluster
(``py_modules``); its dependencies (TensorFlow, Pillow, ...) must be installed on every node.

Files are read where they are: every node must see the roots at the same path (a shared mount).
``start()`` (``Library.index`` calls it before it loads the backbone) joins the cluster and has
every node start a worker for the run meanwhile. Before the embedding, a tiny task on that
worker of every node that will embed reads a sample of the files and the model file; a node
that cannot read a photo stops the run with one line. A model file that some node cannot read
is sent to the actors through the object store instead. The file check runs while the driver
builds the dataset's blocks.

Faults: Ray restarts a dead actor and retries its batch; a result that comes back twice is
passed on once. Closing the results (Ctrl-C, ``break``) stops the dataset's work on the
cluster; what the writer stored is kept.

This module is the driver (``RaySource``); beside it, ``cluster_actor.py`` is the actor,
``cluster_nodes.py`` the plan of actors and the file check on each node, ``cluster_ray.py``
Ray's import, addresses and quiet start-up.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from finder.embed.cluster_actor import Embedder, facts_from_json
from finder.embed.cluster_nodes import PROBE_TIMEOUT, ClusterPlan, plan_actors, probe, sample
from finder.embed.cluster_ray import (
    check_address,
    errors_to_stderr,
    finder_error,
    first_line,
    native_quiet,
    quiet_ray,
    require_ray,
    sigint_deferred,
)
from finder.errors import Arg, ClusterError

CALL_BATCHES = 2  # model batches per actor call
MAX_BLOCKS = 20_000  # input blocks at most (bigger blocks beyond that)


class RaySource:
    """Embedding results from a Ray cluster for one index run (see the module docstring).

    ``info`` is the library's recorded backbone (``BackboneInfo.to_dict()``); ``weights`` a
    local file to read its weights or model from instead of the recorded path (as
    ``Library.backbone`` takes it). ``batch_size`` is images per model call (default: the
    backbone's, per device); ``workers`` decode threads per actor (default: the node's CPUs,
    per GPU on a GPU node); ``actors`` overrides the pool size; ``ship_model`` forces (True) or
    forbids (False) sending the model file through the object store (default: when a node
    cannot read it). ``init`` adds arguments for ``ray.init`` when a cluster is started here.
    """

    def __init__(
        self,
        address: str | None,
        info: dict,
        *,
        weights: str | None = None,
        batch_size: int | None = None,
        workers: int | None = None,
        actors: int | None = None,
        ship_model: bool | None = None,
        init: dict | None = None,
    ) -> None:
        self.address = check_address(address)
        self.ray = require_ray()
        self.info = dict(info)
        self.weights = weights
        self.batch_size = batch_size
        self.workers = workers
        self.actors = actors
        self.ship_model = ship_model
        self.init = dict(init or {})
        self.started = False
        self.connected = False
        self.plan: ClusterPlan | None = None
        self._blob: list | None = None
        self._model_checked = False
        self._warm: list = []  # the tasks start() sent to have the nodes' workers ready

    # -- connecting ---------------------------------------------------------------------
    def connect(self) -> ClusterPlan:
        """Join or start the cluster (once) and plan the actors."""
        ray = self.ray
        if not self.connected:
            quiet_ray()
            errors_to_stderr()
            if not ray.is_initialized():
                self._init()
            self.connected = True
            ctx = ray.data.DataContext.get_current()
            ctx.enable_progress_bars = False  # finder shows its own progress
            ctx.print_on_execution_start = False
            ctx.enable_auto_log_stats = False
        self.plan = plan_actors(ray.nodes())
        return self.plan

    def start(self) -> None:
        """Join (or start) the cluster now and have every node that will embed start a worker
        process for this run, while the driver does its own work (loads the backbone, walks):
        the file check then runs on a ready worker instead of waiting for one."""
        self.connect()
        self._warm = list(self._probe([], None).values())

    def _init(self) -> None:
        ray = self.ray
        env = {"env_vars": {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}}
        args: dict[str, Any] = {
            "logging_level": logging.ERROR,
            "log_to_driver": bool(os.environ.get("FINDER_RAY_LOGS")),
            "include_dashboard": False,
        }
        if self.address is None:
            args.update(self.init)
            self.started = True  # from now on close() shuts down what was started
            try:
                with sigint_deferred(), native_quiet():  # a new one, never a running one
                    ray.init(address="local", runtime_env=env, **args)
            except BaseException:  # Ctrl-C during start-up: stop what had started
                self.close()
                raise
            return
        import finder

        env["py_modules"] = [os.path.dirname(os.path.abspath(finder.__file__))]
        args.pop("include_dashboard")
        self.started = True  # close() disconnects: the cluster stays, this driver goes
        try:
            with sigint_deferred(), native_quiet():
                ray.init(address=self.address, runtime_env=env, **args)
        except ConnectionError as e:
            self.close()
            raise ClusterError(
                f"no Ray cluster at {self.address} ({first_line(e)}); start one with "
                "`ray start --head`, or use ",
                Arg("ray"),
                " alone for a local one",
            ) from None

    def close(self) -> None:
        """Disconnect from the cluster if this source connected: a cluster it started (also
        one half started) ends with it, one it joined keeps running."""
        if self.started:
            with contextlib.suppress(Exception):
                self.ray.shutdown()
        self.started = False
        self.connected = False

    def __enter__(self) -> RaySource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- checking -----------------------------------------------------------------------
    def model_path(self) -> str | None:
        """The model or weights file the actors load, when the backbone has one."""
        if self.weights:
            return os.path.abspath(self.weights)
        recorded = self.info.get("weights")
        return recorded if recorded and os.path.isabs(recorded) else None

    def check(self, paths: Sequence[str]) -> None:
        """Every node that will embed reads a sample of ``paths`` and the model file; one line
        when a node cannot read a photo. Decides whether the model goes by object store."""
        self._answer(self._probe(paths, self.model_path()))

    def _probe(self, paths: Sequence[str], model: str | None) -> dict[str, Any]:
        """Start the file check of a sample of ``paths`` and ``model`` on every node that will
        embed (see ``check``); ``_answer`` collects it, so that the driver prepares the run
        while the nodes read."""
        ray = self.ray
        plan = self.plan or self.connect()
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        remote_probe = ray.remote(num_cpus=0, max_retries=0)(probe)
        return {
            node: remote_probe.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)
            ).remote(sample(paths), model)
            for node in plan.nodes
        }

    def _answer(self, refs: dict[str, Any]) -> None:
        ray = self.ray
        assert self.plan is not None
        try:
            answers = dict(
                zip(refs, ray.get(list(refs.values()), timeout=PROBE_TIMEOUT), strict=True)
            )
        except ray.exceptions.GetTimeoutError:
            raise ClusterError(
                f"the Ray nodes did not answer a file check within {PROBE_TIMEOUT:.0f}s"
            ) from None
        except ray.exceptions.RayError as e:
            raise ClusterError(f"the file check failed on the cluster: {first_line(e)}") from None
        model_everywhere = True
        for node, (bad, model_ok) in answers.items():
            if bad:
                path, why = bad[0]
                raise ClusterError(
                    f"Ray node {self.plan.names.get(node, node[:8])} cannot read {path} ({why}): "
                    "the folders to index must be at the same path on every node (a shared mount)"
                )
            model_everywhere &= model_ok
        model = self.model_path()
        if model and not self._model_checked:
            ship = (not model_everywhere) if self.ship_model is None else self.ship_model
            self._blob = [ray.put(Path(model).read_bytes())] if ship else None
            self._model_checked = True

    # -- embedding ----------------------------------------------------------------------
    def embed(self, items: Sequence[tuple[int, str]]) -> Iterator[tuple[int, Any, Any, Any]]:
        """(id, vector, None, facts) or (id, None, reason, None) for every item, in any order,
        each id once: what ``embed_paths(..., facts=True)`` yields for a local run."""
        items = list(items)
        if not items:
            return iter(())
        plan = self.connect()
        answers = self._probe([p for _, p in items], self.model_path())
        inputs = self._inputs(items)  # built while the nodes read their sample
        self._answer(answers)
        return self._stream(self._embedding(inputs, plan, len(items)), items)

    def _per_call(self) -> int:
        from finder.embed import runtime

        views = int(self.info.get("views", 1))
        assert self.plan is not None
        default = runtime.GPU_BATCH_SIZE if self.plan.gpus else runtime.CPU_BATCH_SIZE
        return CALL_BATCHES * max(1, int(self.batch_size or default) // views)

    def _inputs(self, items: list[tuple[int, str]]) -> Any:
        """The pending files as a Ray Dataset of (id, path) blocks, one model call's worth
        each (bigger when there would be more than MAX_BLOCKS)."""
        import pyarrow as pa

        per_call = self._per_call()
        calls = -(-len(items) // per_call)
        block = per_call * max(1, -(-calls // MAX_BLOCKS))
        tables = []
        for start in range(0, len(items), block):
            chunk = items[start : start + block]
            tables.append(
                pa.table(
                    {
                        "id": pa.array([i for i, _ in chunk], pa.int64()),
                        "path": pa.array([os.fsencode(p) for _, p in chunk], pa.binary()),
                    }
                )
            )
        # from_blocks reads the blocks' metadata here; from_arrow runs a task a block for it
        make = getattr(self.ray.data, "from_blocks", None) or self.ray.data.from_arrow
        return make(tables)

    def _embedding(self, ds: Any, plan: ClusterPlan, count: int) -> Any:
        """``ds`` mapped by ``Embedder`` on the actor pool."""
        ray = self.ray
        per_call = self._per_call()
        calls = -(-count // per_call)
        actors = self.actors or plan.actors
        resources: dict[str, Any] = {"num_cpus": 1}
        if plan.gpus:
            resources = {"num_cpus": 1, "num_gpus": 1}
        return ds.map_batches(
            Embedder,
            batch_size=per_call,
            batch_format="numpy",
            zero_copy_batch=True,
            compute=ray.data.ActorPoolStrategy(
                size=max(1, min(actors, calls)),
                max_tasks_in_flight_per_actor=4,
                max_concurrent_calls_per_actor=2,
                enable_true_multi_threading=True,
            ),
            fn_constructor_kwargs={
                "info": self.info,
                "model": self.model_path(),
                "blob": self._blob,
                "batch_size": self.batch_size,
                "workers": self.workers,
                "threads": plan.threads,
            },
            **resources,
        )

    def _stream(self, ds: Any, items: list[tuple[int, str]]) -> Iterator[tuple[int, Any, Any, Any]]:
        ray = self.ray
        seen = np.zeros(max(i for i, _ in items) + 1, dtype=bool)
        batches = iter(ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=0))
        first = True
        try:
            while True:
                try:
                    if first:  # the actors start: Ray's native notices are not for the user
                        with native_quiet():
                            batch = next(batches)
                        first = False
                    else:
                        batch = next(batches)
                except StopIteration:
                    return
                except ray.exceptions.RayError as e:
                    ours = finder_error(e)
                    if ours is not None:
                        raise ClusterError(f"on the cluster: {ours}") from None
                    raise ClusterError(f"the cluster run failed: {first_line(e)}") from None
                for k, image_id in enumerate(batch["id"].tolist()):
                    if seen[image_id]:
                        continue  # a retried batch delivered twice
                    seen[image_id] = True
                    error = batch["error"][k]
                    if error:
                        yield image_id, None, str(error), None
                    else:
                        yield image_id, batch["vector"][k], None, facts_from_json(batch["facts"][k])
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()  # shuts the dataset's executor down: the actors are released
