"""`finder index --ray` on a real local Ray cluster: a head and a second node (separate raylets
on 127.0.0.1, one CPU each), started once for this module and stopped at its end. The backbone
is the shared TFLite model; the photos are a few dozen of the shared ones, copied to a scratch
tree that the tests change. Skipped when Ray is not installed (`pip install 'finder[ray]'`);
the tests of the command line that need no cluster run either way."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from finder.errors import ClusterError, UsageError
from finder.library import BackboneChoice, Library
from tests.conftest import PHOTOS, REPO, TFLITE_MODEL, need_shared, run_finder

N_PHOTOS = 36  # a few dozen: 12 of each of three flower species
COPIES = 4  # copies of them for the killed driver (a run long enough to be killed in)


def _chaos_check():
    """scripts/chaos_index.py's consistency check (the same one, not a copy)."""
    spec = importlib.util.spec_from_file_location("chaos_index", REPO / "scripts/chaos_index.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.check


def _start(cluster_class, head: dict, attempts: int = 3):
    """A head node. On a machine loaded by other work Ray's agents can miss their start-up
    deadline (the raylet then exits): try again, a few times."""
    for attempt in range(attempts):
        try:
            return cluster_class(initialize_head=True, head_node_args=head)
        except Exception:  # noqa: BLE001 - Ray raises a bare Exception on a start-up time-out
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def ray_cluster():
    """A head node and a worker node; yields the address drivers join."""
    pytest.importorskip(
        "ray", reason="Ray is not installed (pip install 'finder[ray]')", exc_type=ImportError
    )
    need_shared(TFLITE_MODEL)
    need_shared(PHOTOS)
    import ray
    from ray.cluster_utils import Cluster

    from finder.embed.cluster_nodes import wait_for_nodes

    node = {"num_cpus": 1, "object_store_memory": 150 * 2**20}
    cluster = _start(Cluster, {**node, "include_dashboard": False})
    try:
        cluster.add_node(**node)
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
        wait_for_nodes(ray, 2)
        ray.shutdown()  # finder's runs join it themselves, as a user's would
        yield cluster.address
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch copy of N_PHOTOS shared photos, plus one file that is not an image."""
    need_shared(PHOTOS)
    root = tmp_path_factory.mktemp("ray") / "tree"
    species = sorted(p for p in (PHOTOS / "flowers17").iterdir() if p.is_dir())[:3]
    for folder in species:
        for src in sorted(folder.glob("*.jpg"))[: N_PHOTOS // 3]:
            dest = root / folder.name / src.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest)
    (root / "broken.jpg").write_bytes(b"not a photo at all")
    return root


def _choice() -> BackboneChoice:
    return BackboneChoice(model=str(TFLITE_MODEL))


@pytest.fixture(scope="module")
def local_library(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same photos indexed here, without Ray: the reference vectors."""
    need_shared(TFLITE_MODEL)
    path = tmp_path_factory.mktemp("local") / "lib"
    with Library(path, backbone=_choice()) as lib:
        summary = lib.index([str(tree)])
        assert summary.embedded == N_PHOTOS and summary.failed == 1
    return path


def _vectors(library: Path, root: Path) -> dict[str, np.ndarray]:
    with Library(library) as lib:
        paths, vectors = lib.vectors_under(str(root))
    return {os.path.relpath(p, root): v for p, v in zip(paths, vectors, strict=True)}


def _assert_same_vectors(
    library: Path, root: Path, reference: Path, reference_root: Path | None = None
) -> None:
    got, want = _vectors(library, root), _vectors(reference, reference_root or root)
    assert sorted(got) == sorted(want)
    for name, vector in want.items():
        np.testing.assert_allclose(got[name], vector, atol=2e-3, err_msg=name)


def _assert_consistent(library: Path) -> None:
    problems = _chaos_check()(library, set())
    assert not problems, problems


def _map_workers() -> list:
    """The Ray Data actor processes of this test's cluster (descendants of this process)."""
    import psutil

    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if "MapWorker" in " ".join(proc.cmdline()):
                found.append(proc)
        except psutil.Error:
            continue
    return found


# ----------------------------------------------------------------------------------- cluster
def test_cluster_vectors_equal_local_vectors(
    ray_cluster: str, tree: Path, local_library: Path, tmp_path: Path
) -> None:
    library = tmp_path / "lib"
    with Library(library, backbone=_choice()) as lib:
        summary = lib.index([str(tree)], ray=ray_cluster)
        assert (summary.new, summary.embedded, summary.failed) == (N_PHOTOS + 1, N_PHOTOS, 1)
        assert summary.facts_read == 0  # each photo's facts came back with its vector
        failures = [reason for _, reason in lib.failures()]
        status = lib.status()
    with Library(local_library) as lib:
        assert failures == [reason for _, reason in lib.failures()]
        want = lib.status()
    for key in ("images", "failed", "with_date", "with_file_date", "with_position"):
        assert status[key] == want[key], key
    _assert_same_vectors(library, tree, local_library)
    _assert_consistent(library)


def test_incremental_cluster_run_embeds_only_what_changed(
    ray_cluster: str, tree: Path, tmp_path: Path
) -> None:
    work = tmp_path / "tree"
    shutil.copytree(tree, work)
    library = tmp_path / "lib"
    with Library(library, backbone=_choice()) as lib:
        assert lib.index([str(work)], ray=ray_cluster).embedded == N_PHOTOS
    before = _vectors(library, work)
    folders = sorted(p for p in work.iterdir() if p.is_dir())
    changed = sorted(folders[0].glob("*.jpg"))[0]
    shutil.copy2(sorted(folders[1].glob("*.jpg"))[0], changed)  # new content, same name
    os.utime(changed, ns=(time.time_ns(), time.time_ns()))
    gone = sorted(folders[1].glob("*.jpg"))[-1]
    gone.unlink()
    moved = sorted(folders[2].glob("*.jpg"))[-1]
    moved.rename(work / "moved.jpg")
    shutil.copy2(sorted(folders[2].glob("*.jpg"))[0], work / "added.jpg")

    with Library(library) as lib:
        summary = lib.index([str(work)], ray=ray_cluster)
    assert (summary.changed, summary.new, summary.moved, summary.deleted) == (1, 1, 1, 1)
    assert summary.embedded == 2  # the changed photo and the added one, nothing else
    after = _vectors(library, work)
    rel = os.path.relpath
    assert rel(gone, work) not in after
    np.testing.assert_array_equal(after["moved.jpg"], before[rel(moved, work)])
    assert not np.allclose(after[rel(changed, work)], before[rel(changed, work)], atol=1e-3)
    for name, vector in before.items():
        if name not in (rel(changed, work), rel(gone, work), rel(moved, work)):
            np.testing.assert_array_equal(after[name], vector, err_msg=name)
    _assert_consistent(library)


def test_a_killed_worker_is_retried_and_nothing_is_lost(
    ray_cluster: str, tree: Path, local_library: Path, tmp_path: Path, capsys
) -> None:
    library = tmp_path / "lib"
    killed: list[int] = []

    def progress(event) -> None:
        # at the first result most batches are still queued on both actors: kill one of them
        if event.phase == "embed" and not killed and event.done < event.total:
            workers = _map_workers()
            assert workers, "no Ray Data actor process found"
            workers[0].send_signal(signal.SIGKILL)
            killed.append(workers[0].pid)

    # 4 images a model call → 8 a task: the 36 photos are 5 tasks over the two actors
    with Library(library, backbone=_choice(), batch_size=4) as lib:
        summary = lib.index([str(tree)], ray=ray_cluster, progress=progress)
        assert killed, "the run ended before a worker could be killed"
        assert not summary.interrupted
        assert (summary.embedded, summary.failed) == (N_PHOTOS, 1)
        assert lib.status()["images"] == N_PHOTOS and lib.status()["pending"] == 0
    assert capsys.readouterr().out == ""  # Ray's word of the dead worker is not on stdout
    _assert_same_vectors(library, tree, local_library)
    _assert_consistent(library)


@pytest.fixture(scope="module")
def big_tree(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four copies of the photos: a run of several commits (one every 64 photos), so that a
    driver stopped after the first one stops mid-run."""
    big = tmp_path_factory.mktemp("big") / "big"
    for k in range(COPIES):
        shutil.copytree(tree, big / f"copy{k}")
    return big


def _driver_mid_run(
    big: Path, library: Path, address: str, *more: str
) -> tuple[subprocess.Popen, int]:
    """`finder index BIG --ray ADDRESS` in its own process, returned once it has committed
    some photos (and not all), with how many."""
    cmd = [sys.executable, "-m", "finder", "index", str(big), "--library", str(library)]
    cmd += ["--model", str(TFLITE_MODEL), "--ray", address, "--batch-size", "2", "--quiet"]
    cmd += more
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    stored = 0
    while time.monotonic() < deadline and proc.poll() is None and not stored:
        time.sleep(0.5)
        with Library(library) as lib:  # reads what the run has committed so far
            stored = lib.status()["images"] if lib.exists else 0
    if proc.poll() is not None:
        proc.kill()
        raise AssertionError(f"the run ended first: {proc.stderr.read().decode()[-500:]}")
    assert 0 < stored < COPIES * N_PHOTOS
    return proc, stored


def _stop(proc: subprocess.Popen, signum: int) -> None:
    try:
        proc.send_signal(signum)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_killed_driver_leaves_a_library_the_next_run_repairs(
    ray_cluster: str, big_tree: Path, tree: Path, local_library: Path, tmp_path: Path
) -> None:
    library = tmp_path / "lib"
    total = COPIES * N_PHOTOS
    proc, stored = _driver_mid_run(big_tree, library, ray_cluster)
    _stop(proc, signal.SIGKILL)

    _assert_consistent(library)  # opening it repaired it: catalog and vectors agree
    with Library(library) as lib:
        kept = lib.status()["images"]
        assert kept >= stored  # what the killed run had committed is still there
        summary = lib.index([str(big_tree)], ray=ray_cluster)
        assert summary.embedded == total - kept  # the next run embeds the rest, only the rest
        assert lib.status()["images"] == total and lib.status()["pending"] == 0
    for k in range(COPIES):
        _assert_same_vectors(library, big_tree / f"copy{k}", local_library, tree)
    _assert_consistent(library)


def test_ctrl_c_stops_the_cluster_work_and_keeps_what_was_stored(
    ray_cluster: str, big_tree: Path, tmp_path: Path
) -> None:
    library = tmp_path / "lib"
    proc, stored = _driver_mid_run(big_tree, library, ray_cluster, "--json")
    _stop(proc, signal.SIGINT)
    out, err = proc.stdout.read().decode(), proc.stderr.read().decode()
    assert proc.returncode == 130, err[-1000:]
    assert "Traceback" not in err, err[-1000:]
    assert json.loads(out)["interrupted"] is True  # Ray's messages did not go to stdout
    with Library(library) as lib:
        assert not lib.folder.open_catalog_for_writing().get_meta(
            "dirty", False
        )  # the run settled it, no repair needed
        assert stored <= lib.status()["images"] < COPIES * N_PHOTOS
    _assert_consistent(library)
    deadline = time.monotonic() + 60  # the run's actors are released on the cluster
    while _map_workers() and time.monotonic() < deadline:
        time.sleep(1)
    assert not _map_workers()


def test_model_sent_through_the_object_store_gives_the_same_vectors(
    ray_cluster: str, tree: Path
) -> None:
    from finder.embed import registry
    from finder.embed.cluster import RaySource
    from finder.embed.pipeline import embed_paths

    paths = sorted(str(p) for p in tree.rglob("*.jpg"))[:6]
    backbone = registry.build(model=str(TFLITE_MODEL))
    local = {k: v for k, v, *_ in embed_paths(enumerate(paths), backbone)}
    with RaySource(ray_cluster, backbone.info.to_dict(), ship_model=True) as source:
        got = {k: v for k, v, *_ in source.embed(list(enumerate(paths)))}
        assert source._blob is not None  # the file went by object store, not by path
    assert sorted(got) == sorted(local)
    for k, vector in local.items():
        np.testing.assert_allclose(got[k], vector, atol=1e-5)


def test_a_node_that_cannot_read_the_photos_stops_the_run_in_one_line(
    ray_cluster: str, tmp_path: Path
) -> None:
    from finder.embed.cluster import RaySource

    missing = tmp_path / "not-on-this-node.jpg"  # seen by the driver's walk, gone for the nodes
    with RaySource(ray_cluster, {"name": "tflite", "weights": str(TFLITE_MODEL)}) as source:
        with pytest.raises(ClusterError) as err:
            source.check([str(missing)])
    message = str(err.value)
    assert "\n" not in message
    assert str(missing) in message and "same path on every node" in message


# ------------------------------------------------------------------------- no cluster needed
def test_ray_missing_says_how_to_install_it(tmp_path: Path, photo_tree: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "ray.py").write_text("raise ImportError('no ray here')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(blocker), str(REPO)])}
    result = run_finder(
        "index", str(photo_tree), "--library", str(tmp_path / "lib"), "--ray", env=env
    )
    err = result.stderr.decode().strip()
    assert result.returncode != 0
    assert err.count("\n") == 0 and "pip install 'finder[ray]'" in err, err
    assert not (tmp_path / "lib" / "catalog.db").exists()  # said before anything was done


@pytest.mark.parametrize(
    ("args", "address"),
    [
        (["index", "a", "--ray"], "local"),
        (["index", "--ray", "a"], "local"),
        (["index", "--ray", "--quiet", "a"], "local"),
        (["index", "a", "--ray", "auto"], "auto"),
        (["index", "a", "--ray", "10.0.0.5:6379"], "10.0.0.5:6379"),
        (["index", "a", "--ray", "ray://head:10001"], "ray://head:10001"),
        (["index", "a", "--ray=auto"], "auto"),
        (["index", "--ray", "--", "a"], "local"),
    ],
)
def test_ray_option_takes_an_optional_address(args: list[str], address: str) -> None:
    import typer

    from finder.show.cli import app

    command = typer.main.get_command(app).commands[args[0]]
    parsed = command.make_context(args[0], args[1:]).params
    assert parsed["ray"] == address
    assert "a" in [str(root) for root in parsed["roots"]]


def test_a_ray_value_that_is_no_address_is_refused(tmp_path: Path) -> None:
    result = run_finder("index", str(tmp_path), "--ray=no-address", "--library", str(tmp_path))
    err = result.stderr.decode().strip()
    assert result.returncode == 2 and "not a Ray address" in err and "--ray" in err, err


def test_a_bad_address_is_a_usage_error(tmp_path: Path, photo_tree: Path) -> None:
    with pytest.raises(UsageError, match="not a Ray address"):
        Library(tmp_path / "lib").index([str(photo_tree)], ray="no address")


def test_a_local_run_never_imports_ray(tmp_path: Path, photo_tree: Path, model_args) -> None:
    code = (
        "import sys; from finder.library import Library, BackboneChoice; "
        f"lib = Library({str(tmp_path / 'lib')!r}, backbone=BackboneChoice(model=sys.argv[1], "
        "layer=sys.argv[2] or None)); "
        f"s = lib.index([{str(photo_tree)!r}]); "
        "print(s.embedded, 'ray' in sys.modules)"
    )
    model = model_args[model_args.index("--model") + 1]
    layer = model_args[model_args.index("--layer") + 1] if "--layer" in model_args else ""
    result = subprocess.run(
        [sys.executable, "-c", code, model, layer],
        capture_output=True,
        cwd=REPO,
        timeout=300,
        check=False,
    )
    assert result.stdout.decode().split() == ["13", "False"], result.stderr.decode()[-1000:]


def _node(node_id: str, cpus: float, gpus: float = 0, alive: bool = True) -> dict:
    """A record as `ray.nodes()` gives it (the fields finder reads)."""
    resources = {"CPU": cpus, **({"GPU": gpus} if gpus else {})}
    return {"NodeID": node_id, "Alive": alive, "Resources": resources}


def test_one_actor_per_gpu_with_the_node_cores_shared_among_them() -> None:
    from finder.embed.cluster_nodes import plan_actors

    plan = plan_actors(
        [_node("head", 8), _node("g1", 32, 4), _node("g2", 16, 2), _node("gone", 8, 8, False)]
    )
    assert plan.gpus and plan.actors == 6
    assert plan.nodes == ["g1", "g2"] and plan.threads == {"g1": 8, "g2": 8}


def test_one_actor_per_node_without_gpus() -> None:
    from finder.embed.cluster_nodes import plan_actors

    plan = plan_actors([_node("head", 0), _node("a", 16), _node("b", 4)])
    assert not plan.gpus and plan.actors == 2 and plan.threads == {"a": 16, "b": 4}
    with pytest.raises(ClusterError, match="no node with a CPU or GPU"):
        plan_actors([_node("head", 0)])
