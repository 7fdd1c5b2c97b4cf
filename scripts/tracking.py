"""MLflow tracking of finished training runs: parameters, per-epoch metrics, final metrics, loss figure.

Every training run (``scripts/train.py`` with either engine, and each run of ``scripts/study.py``)
becomes one MLflow run, logged from the files its run folder already holds (``result.json``,
``history.json``, ``loss.png``) once training has finished. Logging after the fact, in one batch,
means a run killed half-way leaves no half-logged MLflow run behind; the retry logs the whole run.

Where the records go: ``MLFLOW_TRACKING_URI`` if set (e.g. ``http://host:5000`` for a tracking
server), else the file store ``mlruns/`` at the repository root (git-ignored). ``SCRATCH_TRACKING=off``
turns tracking off. Which MLflow run holds a run folder is kept in ``<run_dir>/tracking.json``
(per tracking URI), so a run folder is logged at most once per store.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_STORE = ROOT / "mlruns"
MARKER = "tracking.json"
# result.json's final metric groups -> the prefix of their MLflow metric names (test_macro_f1, ...).
FINAL_METRICS = {"test_metrics_keras": "test", "valid_metrics_keras": "valid"}


def enabled() -> bool:
    return os.environ.get("SCRATCH_TRACKING", "on").strip().lower() not in ("0", "off", "false", "no")


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI``, else ``file://<repo>/mlruns``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_STORE.as_uri()


def _client(uri: str):
    if uri.startswith("file:") or "://" not in uri:
        # MLflow 3 keeps its file store in maintenance mode and refuses it unless asked: it is the one
        # local store mlflow-skinny can write (SQLite needs the full package's SQLAlchemy).
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient
    return MlflowClient(tracking_uri=uri)


def experiment_id(name: str, uri: str | None = None) -> str:
    """The id of experiment ``name``, created if missing (call it once before starting parallel runs:
    two processes creating the same experiment at once in a file store would make two)."""
    from mlflow.exceptions import MlflowException
    client = _client(uri or tracking_uri())
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException:  # created meanwhile by another process
        return client.get_experiment_by_name(name).experiment_id


def _flat_params(result: dict) -> dict[str, str]:
    """Scalar settings as they are; nested ones (the layer list) as compact JSON."""
    cfg = result.get("config", {})
    params = {k: result.get(k) for k in ("arch", "config_name", "seed", "engine", "train_subset", "noise_seed")}
    params.update({k: (v if not isinstance(v, (list, dict)) else json.dumps(v, separators=(",", ":")))
                   for k, v in cfg.items()})
    params["n_params"] = result.get("params")
    params["data_source"] = result.get("data_source")
    params["split"] = json.dumps(result.get("split"), separators=(",", ":"))
    return {k: str(v)[:6000] for k, v in params.items() if v is not None}


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def log_run(run_dir: Path, experiment: str = "train", metrics: dict | None = None, tags: dict | None = None,
            uri: str | None = None, source: str = "scripts/train.py") -> str | None:
    """Log the finished run folder ``run_dir`` as one MLflow run of ``experiment``; return its run id.

    ``metrics`` (name -> float) and ``tags`` (name -> str) are added to what the folder holds. A
    folder already logged to this store returns its recorded id without logging again. Tracking
    errors are printed, not raised: the training result on disk stays the source of truth, and an
    unlogged folder is logged the next time it is reused.
    """
    if not enabled():
        return None
    run_dir, uri = Path(run_dir), uri or tracking_uri()
    marker = run_dir / MARKER
    logged = json.loads(marker.read_text()) if marker.is_file() else {}
    if uri in logged:
        return logged[uri]
    try:
        from mlflow.entities import Metric, Param
    except ImportError:
        print("[tracking] mlflow is not installed (pip install -e '.[train]'): run not tracked", flush=True)
        return None
    from scratch_models.io_utils import atomic_write_json

    try:
        result = json.loads((run_dir / "result.json").read_text())
        history = json.loads((run_dir / "history.json").read_text())
        client = _client(uri)
        run_tags = {"run_dir": str(run_dir), "host": platform.node(), "mlflow.source.name": source,
                    "mlflow.user": os.environ.get("USER", "unknown"), **(tags or {})}
        commit = _git_commit()
        if commit:
            run_tags["mlflow.source.git.commit"] = commit
        run = client.create_run(experiment_id(experiment, uri), run_name=f"{result['arch']}/{run_dir.name}",
                                tags=run_tags)
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        series = [Metric(key, float(value), now, epoch) for key, values in history.items()
                  if isinstance(values, list) for epoch, value in enumerate(values, 1)
                  if isinstance(value, (int, float))]
        final = {f"{prefix}_{name}": value for key, prefix in FINAL_METRICS.items()
                 for name, value in result.get(key, {}).items()}
        final.update({"train_seconds": result["train_seconds"], "epochs_run": result["epochs_run"],
                      "best_epoch": result["best_epoch"], **(metrics or {})})
        series += [Metric(key, float(value), now, 0) for key, value in final.items() if value is not None]
        params = [Param(k, v) for k, v in _flat_params(result).items()]
        for i in range(0, max(len(series), 1), 1000):  # MLflow takes at most 1000 metrics per batch
            client.log_batch(run_id, metrics=series[i:i + 1000], params=params if i == 0 else [])
        for name in ("loss.png", "result.json", "history.json"):
            if (run_dir / name).is_file():
                client.log_artifact(run_id, str(run_dir / name))
        client.set_terminated(run_id, "FINISHED")
    except Exception as exc:  # noqa: BLE001 -- tracking must not lose a finished training run
        print(f"[tracking] could not log {run_dir} to {uri}: {type(exc).__name__}: {exc}", flush=True)
        return None
    logged[uri] = run_id
    atomic_write_json(marker, logged)
    return run_id
