"""The Ray executor on a local cluster of 2 CPUs: the same labels and rollouts as in-process, a
killed actor's batch retried with nothing lost or labeled twice, resume across executors, and
the error without Ray."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

from teachable.executor import LocalExecutor, PolicySpec, RayExecutor, ShopSpec, make_executor
from teachable.label.labeling import LabelConfig, LabelSetup, label_snapshots
from teachable.mining import mine_failures
from teachable.policy import RandomPolicy
from teachable.policy.lm import LMPolicy
from teachable.policy.teacher.offline import OfflineTeacher
from teachable.records import LabeledSnapshot, iter_jsonl
from teachable.rollouts import EpisodeSetup, goal_specs, play_episodes, run_episodes

ray = pytest.importorskip("ray", reason="the Ray executor's tests need the extra: pip install -e .[ray]")

CONFIG = LabelConfig(n_min=4, n_max=8, ci_halfwidth=0.3, rollout_batch=4, snapshot_batch=2, max_steps=10)


@pytest.fixture(scope="module")
def cluster():
    """One local Ray cluster of 2 CPUs for the module (starting one costs seconds)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def snapshots(small_shop):
    trajs = run_episodes(small_shop, RandomPolicy(), goal_specs(range(0, 40, 4), seed=5), batch_size=16, max_steps=10)
    snaps, _ = mine_failures(trajs, offsets=(1, 3))
    assert len(snaps) >= 8
    return snaps[:8]


@pytest.fixture(scope="module")
def shop_spec(small_data_dir: Path) -> ShopSpec:
    return ShopSpec.of(str(small_data_dir), tagger_backend="heuristic", index_cache=False)


@pytest.fixture(scope="module")
def setup(shop_spec, tiny_student: str) -> LabelSetup:
    return LabelSetup(shop=shop_spec, student=PolicySpec(tiny_student), config=CONFIG)


@pytest.fixture(scope="class")
def label_executor(cluster, setup):
    """Two labeling actors shared by a class's tests (each actor loads torch and the model once);
    they hold the cluster's 2 CPUs until the class is done."""
    with RayExecutor(setup, workers=2) as executor:
        yield executor


@pytest.fixture(scope="module")
def local_labels(small_shop, snapshots, tiny_student, tmp_path_factory, one_torch_thread) -> list[dict]:
    """The tiny LM student's labels, in this process (one torch thread, as in a 1-CPU actor)."""
    records, _ = label_snapshots(snapshots, config=CONFIG, work_file=tmp_path_factory.mktemp("local") / "w.jsonl",
                                 shop=small_shop, student=LMPolicy.from_pretrained(tiny_student),
                                 teacher=OfflineTeacher(small_shop), show_progress=False)
    assert len(records) == len(snapshots)
    return [r.to_dict() for r in records]


class TestLabelingOnTwoActors:
    """Labels on a local cluster of 2 CPUs, 2 actors."""

    def test_ray_labels_equal_local_labels_with_2_actors(self, label_executor, snapshots, local_labels, tmp_path) -> None:
        executor = label_executor
        assert executor.workers == 2 and len(executor._actors) == 2
        retries = executor.retries
        records, progress = label_snapshots(snapshots, config=CONFIG, work_file=tmp_path / "w.jsonl",
                                            executor=executor, show_progress=False)
        assert executor.retries == retries
        assert [r.to_dict() for r in records] == local_labels
        assert progress.labeled == len(snapshots) and progress.branch.episodes > 0
        assert ray.is_initialized()  # the executor did not start the cluster, so it leaves it running


    def test_a_killed_actor_has_its_batch_retried_once(self, label_executor, snapshots, local_labels, tmp_path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
        executor, work = label_executor, tmp_path / "w.jsonl"
        pids = set(ray.get([a.ready.remote() for a in executor._actors]))
        retries = executor.retries
        monkeypatch.setattr(executor, "crash_on", (1,))  # the actor that takes batch 1 exits on its first attempt
        records, progress = label_snapshots(snapshots, config=CONFIG, work_file=work, executor=executor,
                                            show_progress=False)
        assert executor.retries == retries + 1 and len(executor._actors) == 2  # the dead actor was replaced
        assert len(pids & set(ray.get([a.ready.remote() for a in executor._actors]))) == 1
        written = Counter(r.snapshot_id for r in iter_jsonl(work, LabeledSnapshot))
        assert set(written) == {s.snapshot_id for s in snapshots} and set(written.values()) == {1}
        assert progress.labeled == len(snapshots)
        assert [r.to_dict() for r in records] == local_labels


    def test_a_run_killed_locally_resumes_on_ray(self, label_executor, small_shop, setup, snapshots, local_labels, tmp_path,
                                                 one_torch_thread) -> None:
        class Killed(Exception):
            pass

        def kill(progress):
            raise Killed

        work = tmp_path / "w.jsonl"
        with pytest.raises(Killed):
            label_snapshots(snapshots, config=CONFIG, work_file=work, shop=small_shop,
                            student=LMPolicy.from_pretrained(setup.student.name_or_path),
                            teacher=OfflineTeacher(small_shop), show_progress=False, on_batch=kill)
        assert len(list(iter_jsonl(work, LabeledSnapshot))) == CONFIG.snapshot_batch
        records, progress = label_snapshots(snapshots, config=CONFIG, work_file=work, executor=label_executor,
                                            show_progress=False)
        assert progress.resumed == CONFIG.snapshot_batch and progress.labeled == len(snapshots) - CONFIG.snapshot_batch
        assert [r.to_dict() for r in records] == local_labels
        assert len(list(iter_jsonl(work, LabeledSnapshot))) == len(snapshots)


def test_an_actor_that_keeps_dying_gives_up_clearly(cluster, shop_spec) -> None:
    from teachable.rollouts import play_batch

    with RayExecutor(EpisodeSetup(shop_spec), workers=1, crash_on=(0,), max_retries=0) as executor:
        with pytest.raises(RuntimeError, match="batch 0 lost its Ray actor 1 times"):
            list(executor.map(play_batch, [[]]))


def test_ray_rollouts_equal_local_rollouts(cluster, small_shop, shop_spec, tiny_student, one_torch_thread) -> None:
    specs = goal_specs(range(0, 30, 2), seed=3, split="train")
    policy = PolicySpec(tiny_student)
    local = run_episodes(small_shop, policy.build(small_shop), specs, max_steps=8, batch_size=2)
    with RayExecutor(EpisodeSetup(shop_spec), workers=2) as executor:
        remote = play_episodes(executor, policy, specs, max_steps=8, batch_size=2)  # chunks of 8: 2 batches
    assert [t.to_dict() for t in remote] == [t.to_dict() for t in local]


def test_too_many_workers_are_refused(cluster, shop_spec) -> None:
    with pytest.raises(ValueError, match="ray_workers=3 actors do not fit the Ray cluster \\(2 CPUs\\)"):
        RayExecutor(EpisodeSetup(shop_spec), workers=3)
    with pytest.raises(ValueError, match=r"\(0 GPUs at 1 per actor\); add nodes with GPUs .* \(device=cpu\)"):
        RayExecutor(EpisodeSetup(shop_spec), policies=[PolicySpec("/some/model", device="cuda")])


def test_actors_that_cannot_be_scheduled_time_out_clearly(cluster, shop_spec) -> None:
    import ray

    hog = ray.remote(num_cpus=2)(_Hog).remote()  # another job holds every CPU of the cluster
    ray.get(hog.ping.remote())
    try:
        with pytest.raises(TimeoutError, match=r"1 of 1 Ray actors \(1 CPU each\) were not up after 2 s; "
                                               r"the cluster has 0 CPUs"):
            RayExecutor(EpisodeSetup(shop_spec), workers=1, start_timeout_s=2)
    finally:
        ray.kill(hog)
    with RayExecutor(EpisodeSetup(shop_spec), workers=2, start_timeout_s=120) as executor:  # freed: both start
        assert len(executor._actors) == 2


class _Hog:
    def ping(self) -> bool:
        return True


def test_without_ray_executor_ray_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, setup) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    with pytest.raises(ImportError, match=r"pip install -e \.\[ray\]"):
        make_executor(LabelConfig(executor="ray"), setup)
    assert isinstance(make_executor(LabelConfig(), lambda: "world"), LocalExecutor)


def test_executor_options_are_checked() -> None:
    with pytest.raises(ValueError, match="executor 'dask' is unknown; use one of local, ray"):
        LabelConfig(executor="dask")
    with pytest.raises(ValueError, match="ray_gpus must be > 0"):
        LabelConfig(ray_gpus=0)


def test_label_phase_killed_locally_resumes_with_executor_ray(cluster, mlflow_store: str, small_data_dir: Path,
                                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    from entry_points import label, mine, rollouts
    from entry_points import runs as phase_runs
    from teachable.label import labeling
    from teachable.records import read_jsonl

    monkeypatch.setenv("TEACHABLE_WORK_DIR", str(tmp_path / "work"))
    rollouts.main(["--data_dir", str(small_data_dir), "--student", "random", "--n_goals", "10", "--max_steps", "8",
                   "--executor", "ray", "--ray_workers", "2"])
    mine.main(["--offsets", "1,2"])
    args = ["--data_dir", str(small_data_dir), "--student", "random", "--max_snapshots", "6", "--snapshot_batch", "2",
            "--n_min", "4", "--n_max", "8", "--rollout_batch", "4", "--max_steps", "8"]
    real = labeling.label_batch
    calls = []

    def killed_on_second_batch(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return real(*a, **k)

    monkeypatch.setattr(labeling, "label_batch", killed_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        label.main(args)
    monkeypatch.setattr(labeling, "label_batch", real)
    label.main([*args, "--executor", "ray", "--ray_address", "", "--ray_workers", "2"])
    client = MlflowClient()
    runs = client.search_runs([phase_runs.setup_tracking()], order_by=["attributes.start_time DESC"])
    done, crashed = runs[0], runs[1]
    assert crashed.info.status == "FAILED" and done.info.status == "FINISHED"
    assert done.data.tags["teachable.work_key"] == crashed.data.tags["teachable.work_key"]
    m = done.data.metrics
    assert m["resumed"] == 2 and m["n_labeled"] == 6 and m["executor.workers"] == 2 and m["executor.retries"] == 0
    assert runs[-1].data.metrics["executor.workers"] == 2 and runs[-1].data.metrics["n_episodes"] == 10
    records = read_jsonl(mlflow.artifacts.download_artifacts(run_id=done.info.run_id,
                                                             artifact_path="labeled_snapshots.jsonl"), LabeledSnapshot)
    assert len({r.snapshot_id for r in records}) == 6 and all(r.quadrant for r in records)


def test_micro_training_on_ray_equals_local(cluster, small_shop, shop_spec, tiny_student, local_labels,
                                            one_torch_thread) -> None:
    from dataclasses import replace

    from teachable.label.labeling import finalize
    from teachable.training.micro import (
        MICRO_RECIPE,
        MicroConfig,
        MicroSetup,
        micro_validate,
        stratified_sample,
    )

    records, _ = finalize([LabeledSnapshot.from_dict(r) for r in local_labels], CONFIG)
    config = MicroConfig(per_quadrant=1, n_rollouts=4, max_steps=10, n_boot=50, device="cpu")
    recipe = replace(MICRO_RECIPE, train_steps=1)
    local = micro_validate(records, base_model=tiny_student, shop=small_shop, config=config, recipe=recipe,
                           show_progress=False)
    assert len(local["snapshots"]) >= 2
    with RayExecutor(MicroSetup(shop_spec, tiny_student, config), workers=2) as executor:
        remote = micro_validate(records, base_model=tiny_student, config=config, recipe=recipe, executor=executor,
                                show_progress=False)
    # rows in the order of the stratified sample, whichever actor finished first
    sample = stratified_sample(records, config.per_quadrant, config.seed)
    assert [r["snapshot_id"] for r in remote["snapshots"]] == [r.snapshot_id for r in sample]
    assert remote["snapshots"] == local["snapshots"]  # the summaries follow from these rows


def test_recovery_evaluates_on_ray_as_in_process(cluster, mlflow_store: str, small_data_dir: Path, tiny_student: str,
                                                 one_torch_thread) -> None:
    import mlflow
    import pandas as pd
    from mlflow.tracking import MlflowClient

    from entry_points import label, mine, recovery, rollouts
    from entry_points import runs as phase_runs

    rollouts.main(["--data_dir", str(small_data_dir), "--student", "random", "--n_goals", "10", "--max_steps", "8"])
    mine.main(["--offsets", "1,2,3", "--include_search_steps", "false"])
    label.main(["--data_dir", str(small_data_dir), "--student", tiny_student, "--max_snapshots", "6",
                "--n_min", "2", "--n_max", "2", "--rollout_batch", "2", "--max_steps", "10"])
    args = ["--data_dir", str(small_data_dir), "--min_l_upper", "0.5", "--train_steps", "2", "--train_batch_size", "4",
            "--heldout_goals", "4", "--failure_snapshots", "3", "--retention_goals", "0", "--episodes_per_item", "2",
            "--max_steps", "10", "--n_boot", "20", "--batch_size", "2"]
    recovery.main(args)
    recovery.main([*args, "--executor", "ray", "--ray_workers", "2"])  # chunks of 8 episodes: both actors play
    client = MlflowClient()
    ray_run, local_run = [r for r in client.search_runs([phase_runs.setup_tracking()], order_by=["attributes.start_time DESC"])
                          if r.data.tags.get("teachable.phase") == "recovery"][:2]
    assert ray_run.data.metrics["executor.workers"] == 2 and local_run.data.metrics["executor.workers"] == 1
    for name in ("eval_heldout.csv", "eval_failures.csv"):
        ray_rows, local_rows = (pd.read_csv(mlflow.artifacts.download_artifacts(run_id=r.info.run_id, artifact_path=name))
                                for r in (ray_run, local_run))
        assert len(ray_rows) > 0 and set(ray_rows.model) == {"base", "recovery"}
        pd.testing.assert_frame_equal(ray_rows, local_rows)
