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

The dataset is ``from_arrow`` over (id, path) blocks → ``map_batches(_Embedder)`` on an actor
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
Before the run a tiny task on every node that will embed reads a sample of the files and the
model file; a node that cannot read a photo stops the run with one line. A model file that some
node cannot read is sent to the actors through the object store instead.

Faults: Ray restarts a dead actor and retries its batch; a result that comes back twice is
passed on once. Closing the results (Ctrl-C, ``break``) stops the dataset's work on the
cluster; what the writer stored is kept.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import signal
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from finder.errors import ClusterError, FinderError, UsageError

INSTALL_HINT = "--ray needs Ray, which is not installed: pip install 'finder[ray]'"
LOCAL = "local"
CALL_BATCHES = 2  # model batches per actor call
MAX_BLOCKS = 20_000  # input blocks at most (bigger blocks beyond that)
PROBE_FILES = 8  # files each node reads before a run
PROBE_TIMEOUT = 120.0  # seconds for the probe tasks (they wait for a node's worker to start)

_ADDRESS = re.compile(r"^(ray://)?[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")


def require_ray() -> Any:
    """Import Ray and Ray Data, or say in one line how to install them."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ClusterError(INSTALL_HINT) from None
    return ray


def check_address(address: str | None) -> str | None:
    """``None``/``"local"`` → None (start one here); ``"auto"``, ``host:port`` or
    ``ray://host:port`` as given; anything else is a usage error."""
    if address is None or address == LOCAL:
        return None
    if address == "auto" or _ADDRESS.match(address):
        return address
    raise UsageError(
        f"--ray {address}: not a Ray address (auto, HOST:PORT or ray://HOST:PORT; "
        "--ray alone starts a local one)"
    )


def looks_like_address(text: str) -> bool:
    """True for what ``--ray`` takes as its value rather than as a folder to index."""
    return text in ("auto", LOCAL) or bool(_ADDRESS.match(text))


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


def _probe(paths: list[str], model: str | None) -> tuple[list[tuple[str, str]], bool]:
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


class _Serial:
    """A backbone whose ``embed`` runs one call at a time (two actor calls share it)."""

    def __init__(self, backbone: Any) -> None:
        self._backbone = backbone
        self._lock = threading.Lock()
        self.info = backbone.info
        self.batch_size = backbone.batch_size

    def embed(self, batch: np.ndarray, *, batch_size: int | None = None) -> np.ndarray:
        with self._lock:
            return self._backbone.embed(batch, batch_size=batch_size)


class _Embedder:
    """The actor: the recorded backbone, built once; each call embeds a batch of paths."""

    def __init__(
        self,
        info: dict,
        model: str | None,
        blob: list | None,
        batch_size: int | None,
        workers: int | None,
        threads: dict[str, int],
    ) -> None:
        import ray

        from finder.embed import registry

        if blob is not None:  # the model file came through the object store
            model = _materialise(ray.get(blob[0]), model or "model")
        built = registry.from_info(registry.BackboneInfo.from_dict(info), weights=model)
        self.backbone = _Serial(built)
        self.batch_size = batch_size
        node = ray.get_runtime_context().get_node_id()
        self.workers = workers or threads.get(node) or None

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from finder.embed.pipeline import embed_paths

        ids = np.asarray(batch["id"], dtype=np.int64)
        paths = [os.fsdecode(bytes(p)) for p in batch["path"]]
        vectors = np.zeros((len(ids), self.backbone.info.dim), dtype=np.float32)
        errors = [""] * len(ids)
        facts = [""] * len(ids)
        results = embed_paths(
            enumerate(paths),
            self.backbone,
            batch_size=self.batch_size,
            workers=self.workers,
            facts=True,
        )
        for k, vector, error, photo in results:
            if vector is None:
                errors[k] = _printable(error or "could not decode")
            else:
                vectors[k] = vector
                facts[k] = _facts_json(photo)
        return {
            "id": ids,
            "vector": vectors,
            "error": np.asarray(errors, dtype=object),
            "facts": np.asarray(facts, dtype=object),
        }


def _materialise(data: bytes, name: str) -> str:
    """Write a shipped model file to this node's temporary folder (same base name, so that its
    type is known by its suffix); reused when present with the same size."""
    folder = Path(tempfile.gettempdir()) / "finder-models"
    folder.mkdir(parents=True, exist_ok=True)
    import hashlib

    digest = hashlib.sha256(data).hexdigest()[:16]
    path = folder / f"{digest}-{os.path.basename(name)}"
    if not path.exists() or path.stat().st_size != len(data):
        tmp = path.with_name(f"{path.name}.{os.getpid()}.part")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return str(path)


def _printable(text: str) -> str:
    return text.encode("utf-8", "replace").decode("utf-8")


def _facts_json(photo: Any) -> str:
    """A photo's facts (finder.ingest.facts.PhotoFacts) as one JSON text, "" when none."""
    if photo is None:
        return ""
    return json.dumps({k: v for k, v in dataclasses.asdict(photo).items() if v is not None})


def _facts(text: str) -> Any:
    if not text:
        return None
    from finder.ingest.facts import PhotoFacts

    return PhotoFacts(**json.loads(text))


def _finder_error(error: BaseException) -> FinderError | None:
    """Our own exception inside a Ray error (an actor that could not build the backbone)."""
    seen = set()
    stack = [error]
    while stack:
        e = stack.pop()
        if id(e) in seen or e is None:
            continue
        seen.add(id(e))
        if isinstance(e, FinderError):
            return e
        stack.extend([getattr(e, "cause", None), e.__cause__, e.__context__])
    return None


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

    # -- connecting ---------------------------------------------------------------------
    def connect(self) -> ClusterPlan:
        """Join or start the cluster (once) and plan the actors."""
        ray = self.ray
        if not self.connected:
            _quiet_ray()
            _errors_to_stderr()
            if not ray.is_initialized():
                self._init()
            self.connected = True
            ctx = ray.data.DataContext.get_current()
            ctx.enable_progress_bars = False  # finder shows its own progress
            ctx.print_on_execution_start = False
            ctx.enable_auto_log_stats = False
        self.plan = plan_actors(ray.nodes())
        return self.plan

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
                with _sigint_deferred(), _native_quiet():  # a new one, never a running one
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
            with _sigint_deferred(), _native_quiet():
                ray.init(address=self.address, runtime_env=env, **args)
        except ConnectionError as e:
            self.close()
            raise ClusterError(
                f"no Ray cluster at {self.address} ({_first_line(e)}); start one with "
                "`ray start --head`, or use --ray alone for a local one"
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
        ray = self.ray
        plan = self.plan or self.connect()
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        model = self.model_path()
        probe = ray.remote(num_cpus=0, max_retries=0)(_probe)
        refs = {
            node: probe.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)
            ).remote(sample(paths), model)
            for node in plan.nodes
        }
        try:
            answers = dict(
                zip(refs, ray.get(list(refs.values()), timeout=PROBE_TIMEOUT), strict=True)
            )
        except ray.exceptions.GetTimeoutError:
            raise ClusterError(
                f"the Ray nodes did not answer a file check within {PROBE_TIMEOUT:.0f}s"
            ) from None
        except ray.exceptions.RayError as e:
            raise ClusterError(f"the file check failed on the cluster: {_first_line(e)}") from None
        model_everywhere = True
        for node, (bad, model_ok) in answers.items():
            if bad:
                path, why = bad[0]
                raise ClusterError(
                    f"Ray node {plan.names.get(node, node[:8])} cannot read {path} ({why}): "
                    "the folders to index must be at the same path on every node (a shared mount)"
                )
            model_everywhere &= model_ok
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
        self.check([p for _, p in items])
        return self._stream(self._dataset(items, plan), items)

    def _per_call(self) -> int:
        from finder.embed import runtime

        views = int(self.info.get("views", 1))
        assert self.plan is not None
        default = runtime.GPU_BATCH_SIZE if self.plan.gpus else runtime.CPU_BATCH_SIZE
        return CALL_BATCHES * max(1, int(self.batch_size or default) // views)

    def _dataset(self, items: list[tuple[int, str]], plan: ClusterPlan) -> Any:
        import pyarrow as pa

        ray = self.ray
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
        ds = ray.data.from_arrow(tables)
        actors = self.actors or plan.actors
        resources: dict[str, Any] = {"num_cpus": 1}
        if plan.gpus:
            resources = {"num_cpus": 1, "num_gpus": 1}
        return ds.map_batches(
            _Embedder,
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
                        with _native_quiet():
                            batch = next(batches)
                        first = False
                    else:
                        batch = next(batches)
                except StopIteration:
                    return
                except ray.exceptions.RayError as e:
                    ours = _finder_error(e)
                    if ours is not None:
                        raise ClusterError(f"on the cluster: {ours}") from None
                    raise ClusterError(f"the cluster run failed: {_first_line(e)}") from None
                for k, image_id in enumerate(batch["id"].tolist()):
                    if seen[image_id]:
                        continue  # a retried batch delivered twice
                    seen[image_id] = True
                    error = batch["error"][k]
                    if error:
                        yield image_id, None, str(error), None
                    else:
                        yield image_id, batch["vector"][k], None, _facts(batch["facts"][k])
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()  # shuts the dataset's executor down: the actors are released


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _quiet_ray() -> None:
    """Ray's own loggers say only errors (finder shows the progress; a failure comes back as
    an exception). FINDER_RAY_LOGS=1 keeps everything."""
    if os.environ.get("FINDER_RAY_LOGS"):
        return
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _errors_to_stderr() -> None:
    """Ray prints the cluster's error messages (a worker that died, a task retried) on the
    driver's stdout, where `finder index --json` writes its answer: send them to stderr."""
    try:
        from ray._private import worker
    except ImportError:  # pragma: no cover - another Ray layout: nothing to redirect
        return
    original = getattr(worker, "print_to_stdstream", None)
    if original is None or getattr(original, "finder_stderr", False):
        return

    def to_stderr(data: dict, *args: Any, **kwargs: Any) -> Any:
        return original({**data, "is_err": True}, *args, **kwargs)

    to_stderr.finder_stderr = True  # type: ignore[attr-defined]
    worker.print_to_stdstream = to_stderr


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold Ctrl-C until the block ends, then raise it: Ray's start-up, interrupted half way,
    leaves processes behind that its shutdown does not know of."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


def _native_quiet() -> Any:
    """Silence Ray's native start-up notices on stderr (file descriptor 2) for a moment."""
    if os.environ.get("FINDER_RAY_LOGS"):
        return contextlib.nullcontext()
    from finder.embed.runtime import quiet_native_stderr

    return quiet_native_stderr()


def wait_for_nodes(ray: Any, count: int, timeout: float = 60.0) -> None:
    """Wait until the cluster has ``count`` alive nodes (tests and the benchmark use it)."""
    deadline = time.monotonic() + timeout
    while sum(1 for n in ray.nodes() if n.get("Alive")) < count:
        if time.monotonic() > deadline:
            raise ClusterError(f"the Ray cluster did not reach {count} nodes in {timeout:.0f}s")
        time.sleep(0.2)
