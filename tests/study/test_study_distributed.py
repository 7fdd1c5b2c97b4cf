"""The study on Dask distributed (issue 20): a tiny study end to end on a local cluster of 2 workers,
a rerun that does no work, a worker killed in the middle of a task, and the MLflow records.

The data is a small NusaX-shaped folder written here (three dozen training texts), so the tests need
no DATA_DIR. The references are independent of the study's own code: the saved Keras model is
re-run on the test texts and scored with scikit-learn, and the MLflow store is read back with
MLflow's own client.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
pytest.importorskip("distributed", reason="Dask distributed is not installed (pip install -e '.[dev]')")
pytest.importorskip("mlflow", reason="mlflow-skinny is not installed (pip install -e '.[dev]')")
psutil = pytest.importorskip("psutil", reason="psutil (a dependency of distributed) is not installed")
import study  # noqa: E402

pytestmark = pytest.mark.slow


def study_args(out: Path, epochs: int, *extra: str) -> list[str]:
    return ["--only", "rnn", "--variants", "base,units32", "--seeds", "1", "--epochs", str(epochs),
            "--out", str(out), *extra]


def records(out: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((out / "runs" / "rnn").glob("*.json"))}


def mlflow_runs(store: Path) -> list:
    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=store.as_uri())
    experiment = client.get_experiment_by_name(study.TRACKING_EXPERIMENT)
    return [] if experiment is None else client.search_runs([experiment.experiment_id])


def keras_test_macro_f1(record: dict, data: Path) -> float:
    """The saved model re-run on the test texts with its saved vocabulary, scored by scikit-learn."""
    import keras
    from sklearn.metrics import f1_score

    from scratch_models.datasets import load_nusax

    run_dir = Path(record["keras_run_dir"])
    vec_cfg = json.loads((run_dir / "vectorizer.json").read_text())
    vec = keras.layers.TextVectorization(max_tokens=vec_cfg["max_tokens"], vocabulary=vec_cfg["vocabulary"][2:],
                                         output_sequence_length=vec_cfg["output_sequence_length"])
    test = load_nusax(data).test
    model = keras.saving.load_model(run_dir / "model.keras", compile=False)
    probs = model.predict(np.asarray(vec(list(test.x)), dtype=np.int32), verbose=0)
    return float(f1_score(test.y, probs.argmax(1), average="macro"))


def test_tiny_study_on_two_local_workers_then_a_rerun_does_no_work(tiny_env, capsys):
    out, store = tiny_env["out"], tiny_env["store"]
    assert study.main(study_args(out, 1, "--workers", "2")) == 0
    printed = capsys.readouterr()
    assert "2 planned, 0 finished, 2 to run" in printed.out
    assert "2 tasks on 2 Dask workers" in printed.out

    found = records(out)
    assert sorted(found) == ["base-seed0", "units32-seed0"]
    for name, rec in found.items():
        assert (rec["variant"], rec["seed"], rec["epoch_budget"], rec["epochs_run"]) == (name.split("-")[0], 0, 1, 1)
        assert len(rec["history"]["loss"]) == len(rec["history"]["val_loss"]) == 1
        assert rec["split"] == {"train": 36, "valid": 12, "test": 12}
        assert rec["worker"]["pid"] != os.getpid()  # trained in a worker process, not here
        assert rec["test_macro_f1"] == pytest.approx(keras_test_macro_f1(rec, tiny_env["data"]), abs=1e-9)
        assert rec["scratch"]["agreement"] == 1.0 and rec["scratch"]["max_abs_prob_diff"] < 1e-4

    report = (out / "study.md").read_text()
    units32 = found["units32-seed0"]
    assert f"| 32 | 1 | {units32['test_macro_f1']:.4f} | {units32['test_accuracy']:.4f} |" in report
    assert (out / "figures" / "study_rnn_units.png").stat().st_size > 0

    # The tracking records: one finished MLflow run per study run, where MLFLOW_TRACKING_URI points.
    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=store.as_uri())
    runs = {r.info.run_id: r for r in mlflow_runs(store)}
    assert sorted(runs) == sorted(rec["mlflow_run_id"] for rec in found.values())
    for rec in found.values():
        run = runs[rec["mlflow_run_id"]]
        assert run.info.status == "FINISHED"
        assert run.data.params["arch"] == "rnn" and run.data.params["seed"] == "0"
        assert run.data.params["epochs"] == "1" and run.data.tags["study.variant"] == rec["variant"]
        assert run.data.metrics["test_macro_f1"] == pytest.approx(rec["test_macro_f1"])
        assert run.data.metrics["scratch_agreement"] == rec["scratch"]["agreement"]
        loss = client.get_metric_history(run.info.run_id, "loss")
        assert [(m.step, m.value) for m in loss] == [(1, pytest.approx(rec["history"]["loss"][0]))]
        assert {"loss.png", "result.json", "history.json"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    assert Path(runs[found["base-seed0"]["mlflow_run_id"]].info.artifact_uri.removeprefix("file://")).is_relative_to(store)

    # A rerun finds every record and does nothing: no cluster, no file rewritten, no new MLflow run.
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.suffix != ".md"
              and "figures" not in p.parts}
    assert study.main(study_args(out, 1, "--workers", "2")) == 0
    printed = capsys.readouterr()
    assert "2 planned, 2 finished, 0 to run" in printed.out
    assert "Dask workers" not in printed.err + printed.out
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert len(mlflow_runs(store)) == 2


def alive(process: psutil.Process) -> bool:
    """Running, not merely an unreaped zombie."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_worker_killed_during_a_task_is_retried_and_the_study_completes(tiny_env):
    from distributed import Client, LocalCluster

    out, epochs = tiny_env["out"], 4
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        result: dict = {}
        runner = threading.Thread(target=lambda: result.update(
            rc=study.main(study_args(out, epochs, "--scheduler", cluster.scheduler_address, "--retries", "2"))))
        runner.start()
        # Wait until a run has finished an epoch (its partial history exists) and is still training,
        # then SIGKILL the worker process that runs it.
        killed = None
        deadline = time.monotonic() + 300
        while killed is None and time.monotonic() < deadline and runner.is_alive():
            for partial in (out / "keras-runs" / "rnn").glob(f"*-e{epochs}-seed0/history.partial.json"):
                if (partial.parent / "result.json").exists():
                    continue
                variant = partial.parent.name.split("-")[0]
                busy = [addr for addr, keys in client.processing().items()
                        if any(f"-{variant}-seed0-" in str(k) for k in keys)]
                if busy:
                    pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
                    children = psutil.Process(pid).children(recursive=True)  # the run's fresh interpreter
                    os.kill(pid, signal.SIGKILL)
                    killed = {"variant": variant, "pid": pid, "children": children}
                    break
            time.sleep(0.05)
        runner.join(timeout=600)
        assert not runner.is_alive(), "the study did not finish after the worker was killed"

    assert killed is not None, "no task was caught while training (it finished before it could be killed)"
    assert result["rc"] == 0
    found = records(out)
    assert sorted(found) == ["base-seed0", "units32-seed0"]
    retried = found[f"{killed['variant']}-seed0"]
    print(f"killed worker pid {killed['pid']} while it trained {killed['variant']}; the run finished on pid "
          f"{retried['worker']['pid']} after {retried['run_wall_seconds']:.0f} s of its last attempt")
    assert retried["worker"]["pid"] != killed["pid"]  # finished by another (or the restarted) worker
    # The training ran in a child interpreter of the worker, and that child died with the worker.
    assert killed["children"], "the killed worker had no child process training the run"
    assert not [c.pid for c in killed["children"] if alive(c)], "the killed worker's training child survived"
    assert retried["worker"]["fresh_interpreter"] is True
    assert retried["epochs_run"] == epochs and len(retried["history"]["loss"]) == epochs
    assert retried["scratch"]["agreement"] == 1.0
    # The killed attempt left no MLflow run behind: exactly one finished run per study run.
    runs = mlflow_runs(tiny_env["store"])
    assert sorted(r.info.run_id for r in runs) == sorted(rec["mlflow_run_id"] for rec in found.values())
    assert {r.info.status for r in runs} == {"FINISHED"}
