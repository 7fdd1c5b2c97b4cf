#!/usr/bin/env python
"""Train one architecture with Keras (Adam, sparse categorical cross-entropy, early stopping on
validation loss restoring the best weights) and, with ``--export``, publish it to ``weights/<arch>/``.

    DATA_DIR=../shared/data python scripts/train.py --arch lstm --seed 1 --export

A finished run is cached in ``runs/<arch>/<config>-seed<N>/`` (model, history, vocabulary, metrics):
rerunning the same command skips the training and only redoes what is missing.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import numpy as np  # noqa: E402

from configs import get_config  # noqa: E402
from scratch_models.datasets import load_dataset_for  # noqa: E402
from scratch_models.io_utils import atomic_write_json  # noqa: E402
import tracking  # noqa: E402


def build_keras_model(layers: list, input_shape: tuple, input_dtype: str = "float32"):
    """``[[class_name, kwargs], ...]`` -> an uncompiled ``keras.Sequential``."""
    import keras

    def make(class_name: str, kwargs: dict):
        kwargs = dict(kwargs)
        if class_name == "Bidirectional":
            inner = dict(kwargs.pop("layer"))
            return keras.layers.Bidirectional(make(inner.pop("class_name"), inner), **kwargs)
        return getattr(keras.layers, class_name)(**kwargs)

    model = keras.Sequential([keras.Input(shape=input_shape, dtype=input_dtype)]
                             + [make(name, kw) for name, kw in layers])
    return model


def text_vectorizer(train_texts, max_tokens: int, sequence_length: int):
    """A Keras ``TextVectorization`` (default standardize and split) adapted on the training texts."""
    import keras
    layer = keras.layers.TextVectorization(max_tokens=max_tokens, output_sequence_length=sequence_length)
    layer.adapt(list(train_texts))
    return layer


def learning_rate_for(cfg: dict, n_train: int):
    """The config's learning rate: a constant; with ``lr_schedule='cosine'`` a cosine decay from
    ``learning_rate`` to 0 over the whole epoch budget; with ``'warmup_cosine'`` (one-cycle shape) a
    linear rise from ``learning_rate / 10`` to ``learning_rate`` over ``warmup_epochs``, then a cosine
    decay to 0 over the rest. A function of the optimizer's step, so a resumed run continues on the
    same curve."""
    if cfg.get("lr_schedule") in (None, "constant"):
        return cfg["learning_rate"]
    import keras
    steps_per_epoch = -(-n_train // cfg["batch_size"])
    steps = steps_per_epoch * cfg["epochs"]
    if cfg["lr_schedule"] == "cosine":
        return keras.optimizers.schedules.CosineDecay(cfg["learning_rate"], decay_steps=steps)
    if cfg["lr_schedule"] == "warmup_cosine":
        warmup = min(int(round(steps_per_epoch * cfg.get("warmup_epochs", 2))), steps // 2)
        return keras.optimizers.schedules.CosineDecay(cfg["learning_rate"] / 10, decay_steps=steps - warmup,
                                                      warmup_target=cfg["learning_rate"], warmup_steps=warmup)
    raise ValueError(f"Expected lr_schedule 'constant', 'cosine' or 'warmup_cosine', received {cfg['lr_schedule']!r}")


def optimizer_for(cfg: dict, n_train: int):
    """Adam (the default) or, with ``optimizer='sgd'``, SGD with Nesterov momentum ``momentum`` (0.9)."""
    import keras
    lr = learning_rate_for(cfg, n_train)
    if cfg.get("optimizer", "adam") == "adam":
        return keras.optimizers.Adam(lr)
    if cfg["optimizer"] == "sgd":
        return keras.optimizers.SGD(lr, momentum=cfg.get("momentum", 0.9), nesterov=True)
    raise ValueError(f"Expected optimizer 'adam' or 'sgd', received {cfg['optimizer']!r}")


def loss_for(cfg: dict):
    """Sparse categorical cross-entropy, or with ``label_smoothing`` > 0 the categorical one on
    smoothed one-hot targets (Keras' sparse loss has no smoothing; labels go one-hot, see ``targets``)."""
    import keras
    if cfg.get("label_smoothing"):
        return keras.losses.CategoricalCrossentropy(label_smoothing=cfg["label_smoothing"])
    return "sparse_categorical_crossentropy"


def targets(cfg: dict, y, n_classes: int):
    """Integer labels, or one-hot float32 rows when the config smooths labels."""
    if not cfg.get("label_smoothing"):
        return y
    return np.eye(n_classes, dtype=np.float32)[np.asarray(y)]


def class_weights(cfg: dict, y) -> dict | None:
    """``class_weight='balanced'`` -> {class: n / (n_classes * count)}, so each class weighs the same
    in the loss (macro-F1 counts every class alike; NusaX's neutral class is 24 % of the texts)."""
    if not cfg.get("class_weight"):
        return None
    if cfg["class_weight"] != "balanced":
        raise ValueError(f"Expected class_weight 'balanced' or none, received {cfg['class_weight']!r}")
    counts = np.bincount(np.asarray(y))
    return {c: float(len(y) / (len(counts) * n)) for c, n in enumerate(counts)}


def cifar_augmented(x, y, batch_size: int, seed: int, translate: int = 4):
    """tf.data pipeline: random horizontal flip + random 32x32 crop of a ``translate``-pixel reflect-padded image."""
    import tensorflow as tf
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed, reshuffle_each_iteration=True)

    def augment(img, label):
        img = tf.image.random_flip_left_right(img)
        img = tf.pad(img, [[translate, translate], [translate, translate], [0, 0]], mode="REFLECT")
        img = tf.image.random_crop(img, [32, 32, 3])
        return img, label

    return ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size).prefetch(2)


class JsonProgress:
    """Keras callback factory: one log line per epoch with an ETA, history saved after every epoch."""

    @staticmethod
    def make(run_dir: Path, epochs: int):
        import keras

        class _Progress(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                # After BackupAndRestore resumed at epoch N, keep the first N epochs' history.
                resumed = int(getattr(self.model, "_initial_epoch", 0) or 0)
                partial = run_dir / "history.partial.json"
                self.history: dict[str, list] = {}
                if resumed and partial.is_file():
                    self.history = {k: v[:resumed] for k, v in json.loads(partial.read_text()).items()}
                    print(f"[train] resuming after epoch {resumed} from {run_dir / 'backup'}", flush=True)

            def on_epoch_begin(self, epoch, logs=None):
                self.t_epoch = time.time()

            def on_epoch_end(self, epoch, logs=None):
                logs = dict(logs or {})
                lr = self.model.optimizer.learning_rate
                logs["learning_rate"] = float(lr.numpy() if hasattr(lr, "numpy") else lr)
                for k, v in logs.items():
                    self.history.setdefault(k, []).append(float(v))
                self.history.setdefault("epoch_seconds", []).append(time.time() - self.t_epoch)
                done = epoch + 1
                per = float(np.mean(self.history["epoch_seconds"]))
                print(f"epoch {done}/{epochs} " + " ".join(f"{k}={v:.4g}" for k, v in logs.items())
                      + f" | {per:.1f}s/epoch, ETA <= {per * (epochs - done) / 60:.1f} min", flush=True)
                atomic_write_json(run_dir / "history.partial.json", self.history)

        return _Progress()


def plot_history(history: dict, path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = np.arange(1, len(history["loss"]) + 1)
    ax.plot(epochs, history["loss"], label="train loss")
    ax.plot(epochs, history["val_loss"], label="validation loss")
    ax.set_xlabel("epoch"), ax.set_ylabel("sparse categorical cross-entropy"), ax.set_title(title)
    ax.legend(), ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def fit_scratch(model, cfg: dict, x_train, y_train, x_valid, y_valid, seed: int, run_dir: Path) -> dict:
    """The scratch engine's own training: Adam with the config's learning rate, early stopping on the
    validation loss restoring the best weights (as the Keras path's callbacks do)."""
    from scratch_models.losses import CategoricalCrossentropy
    from scratch_models.optimizers import Adam

    if cfg.get("label_smoothing"):  # categorical cross-entropy on one-hot rows, as loss_for gives Keras
        loss = CategoricalCrossentropy(label_smoothing=cfg["label_smoothing"])
        y_train, y_valid = (targets(cfg, y, model.output_shape[-1]) for y in (y_train, y_valid))
    else:
        loss = "sparse_categorical_crossentropy"
    model.compile(optimizer=Adam(cfg["learning_rate"]), loss=loss)
    history: dict[str, list] = {}
    best, best_weights, waited = np.inf, model.get_weights(), 0
    plateau_best, plateau_wait = np.inf, 0  # Keras' ReduceLROnPlateau (factor 0.3, min_delta 1e-4, min_lr 1e-5)
    rng = np.random.default_rng(seed)
    for epoch in range(cfg["epochs"]):
        h = model.fit(x_train, y_train, epochs=1, batch_size=cfg["batch_size"], validation_data=(x_valid, y_valid),
                      shuffle=True, seed=int(rng.integers(2**31)), verbose=0)
        for k, v in h.history.items():
            history.setdefault(k, []).extend(v)
        print(f"epoch {epoch + 1}/{cfg['epochs']} " + " ".join(f"{k}={v[-1]:.4f}" for k, v in history.items()), flush=True)
        atomic_write_json(run_dir / "history.partial.json", history)
        if cfg.get("reduce_lr_patience"):
            if history["val_loss"][-1] < plateau_best - 1e-4:
                plateau_best, plateau_wait = history["val_loss"][-1], 0
            else:
                plateau_wait += 1
                if plateau_wait >= cfg["reduce_lr_patience"]:
                    opt = model.training.optimizer
                    opt.learning_rate, plateau_wait = max(opt.learning_rate * 0.3, 1e-5), 0
        if history["val_loss"][-1] < best:
            best, best_weights, waited = history["val_loss"][-1], model.get_weights(), 0
        else:
            waited += 1
            if waited >= cfg["patience"]:
                break
    model.set_weights(best_weights)
    return history


def train(arch: str, config_name: str = "default", seed: int = 0, epochs: int | None = None,
          runs_dir: Path = ROOT / "runs", data_dir: str | None = None, config: dict | None = None,
          verbose: int = 2, engine: str = "keras", train_subset: int | None = None,
          augment: bool | None = None, noise_seed: int | None = None, experiment: str | None = "train") -> Path:
    """Train (or reuse a cached run) and return the run folder.

    ``engine='scratch'`` trains the same architecture, from the same seeded initial weights, with
    the NumPy engine; ``train_subset`` keeps the first N training items; ``augment`` overrides the config;
    ``noise_seed`` keeps the initial weights of ``seed`` but draws the shuffling and dropout masks from
    another seed (a control: how far two runs from the same start drift on training noise alone).
    A finished run is logged to MLflow experiment ``experiment`` (``scripts/tracking.py``; None: not).
    """
    import keras
    import tensorflow as tf
    from sklearn.metrics import f1_score

    cfg = config or get_config(arch, config_name)
    if epochs is not None:
        cfg["epochs"] = epochs
    if augment is not None:
        cfg["augment"] = augment
    suffix = ((f"-{engine}" if engine != "keras" else "") + (f"-n{train_subset}" if train_subset else "")
              + (f"-noise{noise_seed}" if noise_seed is not None else ""))
    if suffix and augment is False:
        suffix += "-noaug"
    run_dir = runs_dir / arch / f"{config_name}-seed{seed}{suffix}"
    if (run_dir / "result.json").is_file():
        print(f"[train] {run_dir} is finished; reusing it", flush=True)
        if experiment:  # a run cached before tracking, or while the store was unreachable
            tracking.log_run(run_dir, experiment)
        return run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    data = load_dataset_for(arch, data_dir)

    extra = {}
    if arch == "cnn":
        xs = {s: getattr(data, s).x for s in ("train", "valid", "test")}
        input_shape, input_dtype = (32, 32, 3), "float32"
    else:
        vec = text_vectorizer(data.train.x, cfg["max_tokens"], cfg["sequence_length"])
        xs = {s: np.asarray(vec(list(getattr(data, s).x)), dtype=np.int32) for s in ("train", "valid", "test")}
        vocab = vec.get_vocabulary()
        atomic_write_json(run_dir / "vectorizer.json", {"vocabulary": vocab, "max_tokens": cfg["max_tokens"],
                                                      "output_sequence_length": cfg["sequence_length"]})
        for name, kw in cfg["layers"]:
            if name == "Embedding":
                kw["input_dim"] = len(vocab)
        input_shape, input_dtype = (cfg["sequence_length"],), "int32"
        extra["vocabulary_size"] = len(vocab)
    ys = {s: getattr(data, s).y for s in ("train", "valid", "test")}
    if train_subset:
        xs["train"], ys["train"] = xs["train"][:train_subset], ys["train"][:train_subset]

    model = build_keras_model(cfg["layers"], input_shape, input_dtype)
    if noise_seed is not None:  # same initial weights, new dropout seed generators and shuffling
        initial = model.get_weights()
        keras.utils.set_random_seed(noise_seed)
        model = build_keras_model(cfg["layers"], input_shape, input_dtype)
        model.set_weights(initial)
    model.compile(optimizer=optimizer_for(cfg, len(ys["train"])), loss=loss_for(cfg), metrics=["accuracy"])
    fit_y = {s: targets(cfg, ys[s], len(data.classes)) for s in ("train", "valid")}
    if verbose:
        model.summary(print_fn=lambda s, **_: print(s, flush=True))
    # BackupAndRestore first: it rewinds the model, the optimizer (and so a schedule's step) and the
    # epoch counter of an interrupted run before the progress callback reloads the partial history.
    # EarlyStopping's patience counter starts afresh after a resume.
    callbacks = [keras.callbacks.BackupAndRestore(str(run_dir / "backup")),
                 JsonProgress.make(run_dir, cfg["epochs"]),
                 keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg["patience"],
                                               restore_best_weights=True)]
    if cfg.get("reduce_lr_patience"):
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.3,
                                                           patience=cfg["reduce_lr_patience"], min_lr=1e-5))
    t0 = time.time()
    if engine == "scratch":
        import scratch_models
        if cfg.get("class_weight"):
            raise ValueError("The scratch engine's fit has no class weights: pick a config without 'class_weight'")
        if cfg.get("augment"):
            raise ValueError("The scratch engine trains without data augmentation: pass --no-augment")
        smodel = scratch_models.from_keras(model)  # the same seeded initial weights as the Keras path
        history = fit_scratch(smodel, cfg, xs["train"], ys["train"], xs["valid"], ys["valid"],
                              seed if noise_seed is None else noise_seed, run_dir)
        model.set_weights(smodel.get_weights())
    elif arch == "cnn" and cfg.get("augment"):
        train_data = cifar_augmented(xs["train"], fit_y["train"], cfg["batch_size"], seed, cfg.get("translate", 4))
        model.fit(train_data, validation_data=(xs["valid"], fit_y["valid"]), epochs=cfg["epochs"],
                  callbacks=callbacks, verbose=0)
    else:
        model.fit(xs["train"], fit_y["train"], validation_data=(xs["valid"], fit_y["valid"]),
                  epochs=cfg["epochs"], batch_size=cfg["batch_size"], shuffle=True,
                  class_weight=class_weights(cfg, ys["train"]), callbacks=callbacks, verbose=0)
    train_seconds = time.time() - t0
    if engine == "keras":
        history = callbacks[1].history

    probs = model.predict(xs["test"], batch_size=256, verbose=0)
    pred = probs.argmax(1)
    metrics = {"accuracy": float((pred == ys["test"]).mean()),
               "macro_f1": float(f1_score(ys["test"], pred, average="macro"))}
    valid_metrics = split_metrics(model.predict(xs["valid"], batch_size=256, verbose=0), ys["valid"])
    # Save without optimizer state: a fresh, uncompiled copy holding the best weights.
    clean = build_keras_model(cfg["layers"], input_shape, input_dtype)
    clean.set_weights(model.get_weights())
    tmp = run_dir / "model.tmp.keras"
    clean.save(tmp)
    os.replace(tmp, run_dir / "model.keras")
    atomic_write_json(run_dir / "history.json", history)
    plot_history(history, run_dir / "loss.png", f"{arch} ({config_name}, seed {seed})")
    result = {"arch": arch, "config_name": config_name, "config": cfg, "seed": seed, "engine": engine,
              "train_subset": train_subset, "noise_seed": noise_seed,
              "epochs_run": len(history["loss"]), "best_epoch": int(np.argmin(history["val_loss"])) + 1,
              "train_seconds": train_seconds, "params": int(clean.count_params()),
              "test_metrics_keras": metrics, "valid_metrics_keras": valid_metrics, "data_source": data.source,
              "split": {s: int(len(getattr(data, s))) for s in ("train", "valid", "test")}, **extra}
    atomic_write_json(run_dir / "result.json", result)
    print(f"[train] {arch} seed {seed}: test accuracy {metrics['accuracy']:.4f}, macro-F1 "
          f"{metrics['macro_f1']:.4f}, {train_seconds / 60:.1f} min", flush=True)
    if experiment:
        tracking.log_run(run_dir, experiment)
    return run_dir


def split_metrics(probs, y) -> dict:
    """Accuracy, macro-F1 and mean cross-entropy of predicted probabilities against integer labels."""
    from sklearn.metrics import f1_score
    probs, y = np.asarray(probs, dtype=np.float64), np.asarray(y)
    pred = probs.argmax(1)
    return {"accuracy": float((pred == y).mean()), "macro_f1": float(f1_score(y, pred, average="macro")),
            "loss": float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0))))}


def run_valid_metrics(run_dir: Path, data_dir: str | None = None) -> dict:
    """The validation metrics of a finished run (recomputed from its saved model for runs cached
    before ``result.json`` recorded them)."""
    result = json.loads((run_dir / "result.json").read_text())
    if "valid_metrics_keras" in result:
        return result["valid_metrics_keras"]
    import keras
    data = load_dataset_for(result["arch"], data_dir)
    if result["arch"] == "cnn":
        x = data.valid.x
    else:
        vec_cfg = json.loads((run_dir / "vectorizer.json").read_text())
        vec = keras.layers.TextVectorization(max_tokens=vec_cfg["max_tokens"], vocabulary=vec_cfg["vocabulary"][2:],
                                             output_sequence_length=vec_cfg["output_sequence_length"])
        x = np.asarray(vec(list(data.valid.x)), dtype=np.int32)
    model = keras.saving.load_model(run_dir / "model.keras", compile=False)
    return split_metrics(model.predict(x, batch_size=256, verbose=0), data.valid.y)


def select_seed_by_valid(arch: str, config_name: str, seeds: list[int], runs_dir: Path = ROOT / "runs",
                         **train_kwargs) -> Path:
    """Train (or reuse) one run per seed and return the one with the best VALIDATION macro-F1
    (ties: lower validation loss, then the smaller seed). The test split plays no part in the
    choice; every candidate's validation and test numbers are written to the chosen run's
    ``result.json`` (key ``selection``) and to ``runs/<arch>/<config>-select-seeds<...>.json``."""
    candidates = []
    for seed in seeds:
        run_dir = train(arch, config_name, seed, runs_dir=runs_dir, **train_kwargs)
        result = json.loads((run_dir / "result.json").read_text())
        candidates.append({"seed": seed, "run_dir": str(run_dir), "valid": run_valid_metrics(run_dir, train_kwargs.get("data_dir")),
                           "test": result["test_metrics_keras"], "best_epoch": result["best_epoch"]})
    best = min(candidates, key=lambda c: (-round(c["valid"]["macro_f1"], 6), c["valid"]["loss"], c["seed"]))
    selection = {"rule": "best validation macro-F1; ties: lower validation loss, then smaller seed",
                 "seeds": list(seeds), "chosen_seed": best["seed"], "candidates": candidates}
    for c in candidates:
        print(f"[select] seed {c['seed']}: valid macro-F1 {c['valid']['macro_f1']:.4f} loss {c['valid']['loss']:.4f}"
              f" | test macro-F1 {c['test']['macro_f1']:.4f}" + ("  <- chosen" if c is best else ""), flush=True)
    chosen = Path(best["run_dir"])
    result = json.loads((chosen / "result.json").read_text())
    result["selection"] = selection
    atomic_write_json(chosen / "result.json", result)
    atomic_write_json(runs_dir / arch / f"{config_name}-select-seeds{'-'.join(map(str, seeds))}.json", selection)
    return chosen


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", required=True, choices=["cnn", "rnn", "lstm"])
    p.add_argument("--config", default="default")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None, help="override the config's epoch budget")
    p.add_argument("--runs-dir", type=Path, default=ROOT / "runs")
    p.add_argument("--engine", choices=["keras", "scratch"], default="keras",
                   help="train with Keras (default) or with the scratch NumPy engine")
    p.add_argument("--train-subset", type=int, default=None, help="train on the first N training items only")
    p.add_argument("--no-augment", action="store_true", help="turn the CNN's data augmentation off")
    p.add_argument("--noise-seed", type=int, default=None,
                   help="initial weights from --seed, shuffling and dropout masks from this seed (a control run)")
    p.add_argument("--select-seed-by-valid", default=None, metavar="SEEDS",
                   help="comma-separated seeds (e.g. 0,1,2,3,4): train each (cached) and keep the run with "
                        "the best validation macro-F1; replaces --seed")
    p.add_argument("--export", action="store_true", help="publish the run to weights/<arch>/")
    args = p.parse_args(argv)
    kwargs = dict(epochs=args.epochs, engine=args.engine, train_subset=args.train_subset,
                  augment=False if args.no_augment else None, noise_seed=args.noise_seed)
    if args.select_seed_by_valid:
        seeds = [int(s) for s in args.select_seed_by_valid.split(",") if s.strip()]
        run_dir = select_seed_by_valid(args.arch, args.config, seeds, args.runs_dir, **kwargs)
    else:
        run_dir = train(args.arch, args.config, args.seed, runs_dir=args.runs_dir, **kwargs)
    if args.export:
        from export import export_run
        export_run(run_dir, ROOT / "weights" / args.arch)


if __name__ == "__main__":
    main()
