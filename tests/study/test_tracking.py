"""Tracking of ``scripts/train.py`` runs (issue 20): every finished run, with either engine, becomes
one MLflow run holding its parameters, per-epoch metrics, final test metrics and loss figure, in the
store that MLFLOW_TRACKING_URI names (``mlruns/`` at the repository root when unset).

The reference is the run folder's own files (history.json, result.json) read back through MLflow's
client, not through scripts/tracking.py.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
pytest.importorskip("mlflow", reason="mlflow-skinny is not installed (pip install -e '.[dev]')")
import tracking  # noqa: E402
import train  # noqa: E402
from study_helpers import write_tiny_nusax  # noqa: E402


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.delenv("SCRATCH_TRACKING", raising=False)
    return tmp_path / "mlruns"


def train_runs(store: Path) -> list:
    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=store.as_uri())
    experiment = client.get_experiment_by_name("train")
    return [] if experiment is None else client.search_runs([experiment.experiment_id])


def test_the_default_store_is_mlruns_at_the_repository_root(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.tracking_uri() == (ROOT / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.tracking_uri() == "http://127.0.0.1:5000"
    assert "mlruns/" in (ROOT / ".gitignore").read_text().split()


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["keras", "scratch"])
def test_a_training_run_of_either_engine_is_logged_once(engine, tmp_path, store):
    from mlflow.tracking import MlflowClient

    data = write_tiny_nusax(tmp_path / "data")
    run_dir = train.train("rnn", "default", 0, epochs=2, runs_dir=tmp_path / "runs", data_dir=str(data),
                          verbose=0, engine=engine)
    history = json.loads((run_dir / "history.json").read_text())
    result = json.loads((run_dir / "result.json").read_text())
    (run,) = train_runs(store)
    client = MlflowClient(tracking_uri=store.as_uri())
    assert run.info.status == "FINISHED" and run.info.run_name == f"rnn/{run_dir.name}"
    assert run.data.params["engine"] == engine and run.data.params["seed"] == "0"
    assert run.data.params["epochs"] == "2" and json.loads(run.data.params["layers"]) == result["config"]["layers"]
    for key in ("loss", "val_loss"):
        logged = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in logged] == [1, 2]
        assert [m.value for m in logged] == pytest.approx(history[key])
    assert run.data.metrics["test_macro_f1"] == pytest.approx(result["test_metrics_keras"]["macro_f1"])
    assert run.data.metrics["test_accuracy"] == pytest.approx(result["test_metrics_keras"]["accuracy"])
    assert "loss.png" in {a.path for a in client.list_artifacts(run.info.run_id)}
    assert Path(run.info.artifact_uri.removeprefix("file://")).is_relative_to(store)

    # Reusing the finished run (same command again) logs nothing new.
    assert train.train("rnn", "default", 0, epochs=2, runs_dir=tmp_path / "runs", data_dir=str(data),
                       verbose=0, engine=engine) == run_dir
    assert [r.info.run_id for r in train_runs(store)] == [run.info.run_id]


def test_a_run_finished_without_tracking_is_logged_when_reused(tmp_path, store, monkeypatch):
    """A run folder trained while tracking was off (or the server was down) is logged on its next reuse."""
    run_dir = tmp_path / "runs" / "rnn" / "default-seed3"
    run_dir.mkdir(parents=True)
    (run_dir / "history.json").write_text(json.dumps({"loss": [1.1, 0.9, 0.8], "val_loss": [1.2, 1.0, 1.05]}))
    (run_dir / "result.json").write_text(json.dumps(
        {"arch": "rnn", "config_name": "default", "config": {"epochs": 3, "layers": [["Dense", {"units": 3}]]},
         "seed": 3, "engine": "keras", "epochs_run": 3, "best_epoch": 2, "train_seconds": 4.5, "params": 12,
         "test_metrics_keras": {"accuracy": 0.5, "macro_f1": 0.4}, "data_source": "x", "split": {"train": 3}}))
    monkeypatch.setenv("SCRATCH_TRACKING", "off")
    assert train.train("rnn", "default", 3, runs_dir=tmp_path / "runs") == run_dir
    assert train_runs(store) == []
    monkeypatch.delenv("SCRATCH_TRACKING")
    train.train("rnn", "default", 3, runs_dir=tmp_path / "runs")
    (run,) = train_runs(store)
    assert run.data.metrics["best_epoch"] == 2 and run.data.metrics["test_macro_f1"] == 0.4
    assert json.loads((run_dir / "tracking.json").read_text()) == {store.as_uri(): run.info.run_id}
