#!/usr/bin/env python
"""Text-model experiments of issue 17: variants x seeds, ensembles, refit on train + validation.

    DATA_DIR=../shared/data python scripts/text_experiments.py train --arch lstm --variant distill --seeds 0-4
    DATA_DIR=../shared/data python scripts/text_experiments.py refit --arch lstm --variant distill --seeds 0-4
    DATA_DIR=../shared/data python scripts/text_experiments.py ensemble --arch lstm --variant distill --seeds 0-9 --k 5 --out runs/text/lstm/ens
    python scripts/text_experiments.py summary            # -> reports/text_experiments.json (+ markdown on stdout)

Every member is one Keras training run (the architecture of ``configs.py``; Adam, early stopping on
the validation loss with the best weights restored) cached in ``runs/text/<arch>/<variant>/seed<N>/``
with its validation and test probabilities, so ensembles and summaries are recomputed without
training. Variants change one thing at a time against ``base`` (the committed config):

- ``distill``: targets ``(1 - a) * one_hot + a * teacher``; the teacher is the NusaX protocol's best
  baseline (linear SVM on TF-IDF, C chosen on validation, Platt probabilities), fitted on the
  training texts only, its training-text probabilities out-of-fold (5 folds) so they are not its
  own memorised labels. Validation and test never enter the teacher.
- ``aug``: ``copies`` extra versions of every training text (each word dropped with ``p_drop``, one
  random adjacent swap), hard labels.
- ``distill_aug``: the augmented texts labelled ``(1 - a) * one_hot + a * teacher(augmented text)``.
- ``emb128`` / ``units32`` / ``maxpool`` / ``tokens2000``: architecture and vectorizer choices.

Selection uses validation only (macro-F1, then loss); test numbers are reported, never used to choose.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import numpy as np  # noqa: E402

from configs import get_config, text_layers  # noqa: E402
from scratch_models.datasets import load_nusax  # noqa: E402
from scratch_models.io_utils import atomic_write_json  # noqa: E402

RUNS = ROOT / "runs" / "text"
REPORT = ROOT / "reports" / "text_experiments.json"


def variant_config(arch: str, variant: str) -> dict:
    """The committed config of ``arch`` with the variant's one change (and its training options)."""
    cfg = get_config(arch, "default")
    cfg.setdefault("distill", 0.0)
    cfg.setdefault("copies", 0)
    cfg.setdefault("p_drop", 0.15)
    cell = "LSTM" if arch == "lstm" else "SimpleRNN"
    sd = 0.2 if arch == "lstm" else 0.4
    if variant == "base":
        pass
    elif variant == "distill":
        cfg["distill"] = 0.5
    elif variant == "aug":
        cfg["copies"] = 2
    elif variant == "distill_aug":
        cfg["distill"], cfg["copies"] = 0.5, 2
    elif variant == "emb128":
        cfg["layers"] = text_layers(cell=cell, units=(64,), embedding_dim=128, pool="average", dropout=0.5,
                                    spatial_dropout=sd)
    elif variant == "maxpool":
        cfg["layers"] = text_layers(cell=cell, units=(64,), embedding_dim=64, pool="max", dropout=0.5,
                                    spatial_dropout=sd)
    elif variant == "tokens2000":
        cfg["max_tokens"] = 2000
    else:
        raise ValueError(f"Unknown variant {variant!r}")
    return cfg


# ---------------------------------------------------------------- teacher and augmentation
def teacher(data):
    """Linear SVM on TF-IDF (C from the NusaX grid, chosen on validation), Platt probabilities.

    Returns (out-of-fold probabilities of the training texts, a predict_proba for other texts)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import SVC

    train, y = list(data.train.x), data.train.y
    best = None
    for c in (0.01, 0.1, 1, 10, 100):  # the NusaX grid's linear half; score on validation only
        pipe = make_pipeline(TfidfVectorizer(), SVC(kernel="linear", C=c)).fit(train, y)
        acc = accuracy_score(data.valid.y, pipe.predict(list(data.valid.x)))
        if best is None or acc > best[0]:
            best = (acc, c)

    def make():
        return make_pipeline(TfidfVectorizer(), SVC(kernel="linear", C=best[1], probability=True, random_state=0))

    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    oof = cross_val_predict(make(), train, y, cv=folds, method="predict_proba")
    full = make().fit(train, y)
    return oof.astype(np.float32), (lambda texts: full.predict_proba(list(texts)).astype(np.float32)), best[1]


def augment_texts(texts, copies: int, p_drop: float, seed: int):
    """``copies`` noisy versions of every text: each word dropped with ``p_drop`` (one word always
    kept), then one random pair of adjacent words swapped. Returns (texts, index of the source)."""
    rng = np.random.default_rng(seed)
    out, src = [], []
    for c in range(copies):
        for i, text in enumerate(texts):
            words = text.split()
            keep = [w for w in words if rng.random() >= p_drop] or [words[int(rng.integers(len(words)))]]
            if len(keep) > 2:
                j = int(rng.integers(len(keep) - 1))
                keep[j], keep[j + 1] = keep[j + 1], keep[j]
            out.append(" ".join(keep))
            src.append(i)
    return out, np.asarray(src)


def teacher_spec(member: dict) -> dict | None:
    """What the manifest records about a distilled member's teacher."""
    if not member["config"].get("distill") and not member["config"].get("copies"):
        return None
    return {"model": "sklearn make_pipeline(TfidfVectorizer(), SVC(kernel='linear', C, probability=True, random_state=0))",
            "C": member.get("teacher_C"), "C_grid": [0.01, 0.1, 1, 10, 100], "C_chosen_on": "validation accuracy",
            "fitted_on": "the 500 training texts only",
            "train_targets": "out-of-fold probabilities, StratifiedKFold(5, shuffle=True, random_state=0)",
            "target": "(1 - distill) * one_hot(label) + distill * teacher probabilities"}


# ---------------------------------------------------------------- one member
def split_metrics(probs, y) -> dict:
    from sklearn.metrics import f1_score
    probs, y = np.asarray(probs, np.float64), np.asarray(y)
    pred = probs.argmax(1)
    return {"accuracy": float((pred == y).mean()), "macro_f1": float(f1_score(y, pred, average="macro")),
            "loss": float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0))))}


def train_member(arch: str, variant: str, seed: int, data, refit_epochs: int | None = None,
                 teacher_cache: dict | None = None) -> dict:
    """One seeded Keras run (cached). ``refit_epochs``: train on train + validation for that many
    epochs, no early stopping (the refit protocol); validation numbers are then not meaningful."""
    import keras
    from train import build_keras_model, text_vectorizer

    tag = f"refit{refit_epochs}-" if refit_epochs else ""
    run_dir = RUNS / arch / variant / f"{tag}seed{seed}"
    if (run_dir / "member.json").is_file():
        return json.loads((run_dir / "member.json").read_text())
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = variant_config(arch, variant)
    keras.utils.set_random_seed(seed)
    n_classes = len(data.classes)
    texts, y = list(data.train.x), np.asarray(data.train.y)
    if refit_epochs:
        texts, y = texts + list(data.valid.x), np.concatenate([y, data.valid.y])
    onehot = np.eye(n_classes, dtype=np.float32)
    targets = onehot[y]
    if cfg["distill"] or cfg["copies"]:
        if teacher_cache is not None and "oof" in teacher_cache:
            oof, predict_proba = teacher_cache["oof"], teacher_cache["predict"]
        else:
            oof, predict_proba, c = teacher(data)
            if teacher_cache is not None:
                teacher_cache.update(oof=oof, predict=predict_proba, C=c)
        if refit_epochs and cfg["distill"]:
            raise ValueError("refit with a teacher: the teacher was fitted on train only; not implemented")
    if cfg["distill"]:
        targets = (1 - cfg["distill"]) * targets + cfg["distill"] * oof
    if cfg["copies"]:
        aug, src = augment_texts(texts, cfg["copies"], cfg["p_drop"], seed)
        aug_targets = onehot[y[src]]
        if cfg["distill"]:
            aug_targets = (1 - cfg["distill"]) * aug_targets + cfg["distill"] * predict_proba(aug)
        texts, targets = texts + aug, np.concatenate([targets, aug_targets])
    vec = text_vectorizer(list(data.train.x), cfg["max_tokens"], cfg["sequence_length"])  # train texts only
    vocab = vec.get_vocabulary()
    for name, kw in cfg["layers"]:
        if name == "Embedding":
            kw["input_dim"] = len(vocab)

    def ids(t):
        return np.asarray(vec(list(t)), dtype=np.int32)

    x_train, x_valid, x_test = ids(texts), ids(data.valid.x), ids(data.test.x)
    model = build_keras_model(cfg["layers"], (cfg["sequence_length"],), "int32")
    model.compile(optimizer=keras.optimizers.Adam(cfg["learning_rate"]), loss="categorical_crossentropy")
    t0 = time.time()
    if refit_epochs:
        hist = model.fit(x_train, targets, epochs=refit_epochs, batch_size=cfg["batch_size"], shuffle=True, verbose=0)
    else:
        stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg["patience"], restore_best_weights=True)
        hist = model.fit(x_train, targets, validation_data=(x_valid, onehot[data.valid.y]), epochs=cfg["epochs"],
                         batch_size=cfg["batch_size"], shuffle=True, callbacks=[stop], verbose=0)
    seconds = time.time() - t0
    history = {k: [float(v) for v in vs] for k, vs in hist.history.items()}
    p_valid = model.predict(x_valid, batch_size=256, verbose=0)
    p_test = model.predict(x_test, batch_size=256, verbose=0)
    clean = build_keras_model(cfg["layers"], (cfg["sequence_length"],), "int32")
    clean.set_weights(model.get_weights())
    tmp = run_dir / "model.tmp.keras"
    clean.save(tmp)
    os.replace(tmp, run_dir / "model.keras")
    atomic_write_json(run_dir / "vectorizer.json", {"vocabulary": vocab, "max_tokens": cfg["max_tokens"],
                                                  "output_sequence_length": cfg["sequence_length"]})
    member = {"arch": arch, "variant": variant, "seed": seed, "refit_epochs": refit_epochs, "config": cfg,
              "n_train_texts": len(texts), "epochs_run": len(history["loss"]),
              "best_epoch": (int(np.argmin(history["val_loss"])) + 1) if "val_loss" in history else refit_epochs,
              "train_seconds": seconds, "params": int(clean.count_params()), "history": history,
              "valid": split_metrics(p_valid, data.valid.y), "test": split_metrics(p_test, data.test.y),
              "p_valid": p_valid.round(6).tolist(), "p_test": p_test.round(6).tolist(),
              "teacher_C": (teacher_cache or {}).get("C")}
    atomic_write_json(run_dir / "member.json", member)
    print(f"[member] {arch}/{variant} seed {seed}{' refit ' + str(refit_epochs) if refit_epochs else ''}: "
          f"valid F1 {member['valid']['macro_f1']:.4f} loss {member['valid']['loss']:.4f} | test F1 "
          f"{member['test']['macro_f1']:.4f} | best epoch {member['best_epoch']} | {seconds:.0f} s", flush=True)
    return member


def parse_seeds(text: str) -> list[int]:
    seeds: list[int] = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        seeds += list(range(int(a), int(b) + 1)) if b else [int(a)]
    return seeds


def load_members(arch: str, variant: str, refit: bool = False) -> list[dict]:
    folder = RUNS / arch / variant
    if not folder.is_dir():
        return []
    pattern = "refit*-seed*" if refit else "seed*"
    members = [json.loads((d / "member.json").read_text()) for d in sorted(folder.glob(pattern))
               if (d / "member.json").is_file()]
    return sorted(members, key=lambda m: m["seed"])


# ---------------------------------------------------------------- ensembles as one Keras model
def ensemble_model(member_dirs: list[Path]):
    """k saved Sequential members -> one functional Keras model: a shared int32 input, each member's
    layers renamed ``m<i>_<name>`` (flat: no nested models), an Average of their softmax outputs."""
    import keras
    members = [keras.saving.load_model(d / "model.keras", compile=False) for d in member_dirs]
    inp = keras.Input(shape=members[0].input_shape[1:], dtype="int32", name="token_ids")
    outs, copies = [], []
    for i, m in enumerate(members):
        x = inp
        for layer in m.layers:
            cfg = layer.get_config()
            cfg["name"] = f"m{i}_{cfg['name']}"
            new = layer.__class__.from_config(cfg)
            x = new(x)
            copies.append((new, layer))
        outs.append(x)
    out = keras.layers.Average(name="average")(outs)
    model = keras.Model(inp, out, name="ensemble")
    for new, old in copies:
        new.set_weights(old.get_weights())
    return model


def build_ensemble(arch: str, variant: str, seeds: list[int], out: Path, data, refit_epochs: int | None = None) -> dict:
    """Save the ensemble of those members as a run folder ``export.py`` publishes; check both backends."""
    import keras
    import scratch_models
    from train import plot_history

    tag = f"refit{refit_epochs}-" if refit_epochs else ""
    dirs = [RUNS / arch / variant / f"{tag}seed{s}" for s in seeds]
    members = [json.loads((d / "member.json").read_text()) for d in dirs]
    vocabs = {json.dumps(json.loads((d / "vectorizer.json").read_text())) for d in dirs}
    if len(vocabs) != 1:
        raise ValueError("Members were built on different vocabularies: one ensemble needs one vectorizer")
    model = ensemble_model(dirs)
    out.mkdir(parents=True, exist_ok=True)
    (out / "vectorizer.json").write_text(next(iter(vocabs)))
    vec_cfg = json.loads(next(iter(vocabs)))
    vec = scratch_models.TextVectorizer(vec_cfg["vocabulary"], vec_cfg["output_sequence_length"],
                                        max_tokens=vec_cfg["max_tokens"])
    tmp = out / "model.tmp.keras"
    model.save(tmp)
    os.replace(tmp, out / "model.keras")
    reloaded = keras.saving.load_model(out / "model.keras", compile=False)
    scratch = scratch_models.from_keras(reloaded)
    res = {}
    for split in ("valid", "test"):
        x = vec.transform(list(getattr(data, split).x))
        pk = reloaded.predict(x, batch_size=256, verbose=0)
        ps = scratch.predict(x)
        res[split] = {**split_metrics(pk, getattr(data, split).y),
                      "agreement": float((pk.argmax(1) == ps.argmax(1)).mean()),
                      "max_abs_prob_diff": float(np.abs(pk - ps).max())}
    # history.json / loss.png of an ensemble: the members' curves (export copies both files).
    history = {"loss": list(np.mean([m["history"]["loss"][:min(len(mm["history"]["loss"]) for mm in members)]
                                     for m in members], axis=0))}
    if not refit_epochs:
        n = min(len(m["history"]["val_loss"]) for m in members)
        history["val_loss"] = list(np.mean([m["history"]["val_loss"][:n] for m in members], axis=0))
    else:
        history["val_loss"] = history["loss"]
    history["members"] = {str(m["seed"]): m["history"] for m in members}
    atomic_write_json(out / "history.json", history)
    plot_history(history, out / "loss.png", f"{arch} {variant} ensemble of {len(seeds)} (mean member curves)")
    cfg = {**members[0]["config"], "teacher": teacher_spec(members[0]), "ensemble": {"variant": variant, "seeds": seeds, "k": len(seeds),
                                                "refit_epochs": refit_epochs, "combine": "Average of softmax outputs"}}
    seeds_arg = ",".join(map(str, seeds))
    command = (f"python scripts/text_experiments.py {'refit --epochs ' + str(refit_epochs) if refit_epochs else 'train'} "
               f"--arch {arch} --variant {variant} --seeds {seeds_arg} && python scripts/text_experiments.py ensemble "
               f"--arch {arch} --variant {variant} --seeds {seeds_arg}{' --refit-epochs ' + str(refit_epochs) if refit_epochs else ''} "
               f"--out {os.path.relpath(out, ROOT)} && python scripts/export.py {os.path.relpath(out, ROOT)} weights/{arch}")
    result = {"arch": arch, "config_name": f"ensemble-{variant}", "config": cfg, "seed": seeds,
              "epochs_run": max(m["epochs_run"] for m in members), "best_epoch": [m["best_epoch"] for m in members],
              "train_seconds": float(sum(m["train_seconds"] for m in members)), "params": int(model.count_params()),
              "test_metrics_keras": {k: res["test"][k] for k in ("accuracy", "macro_f1")},
              "valid_metrics_keras": {k: res["valid"][k] for k in ("accuracy", "macro_f1", "loss")},
              "backends": res, "data_source": data.source, "command": command,
              "split": {s: int(len(getattr(data, s))) for s in ("train", "valid", "test")},
              "vocabulary_size": len(vec_cfg["vocabulary"])}
    atomic_write_json(out / "result.json", result)
    print(f"[ensemble] {arch}/{variant} seeds {seeds}: valid F1 {res['valid']['macro_f1']:.4f} | test F1 "
          f"{res['test']['macro_f1']:.4f} acc {res['test']['accuracy']:.4f} | agreement {res['test']['agreement']:.4f}"
          f" max|dp| {res['test']['max_abs_prob_diff']:.1e} | {model.count_params():,} params", flush=True)
    return result


def single_member_run(arch: str, variant: str, seed: int, data) -> Path:
    """A member's folder made publishable by ``export.py`` (result.json, history.json, loss.png)."""
    from train import plot_history
    run_dir = RUNS / arch / variant / f"seed{seed}"
    m = json.loads((run_dir / "member.json").read_text())
    atomic_write_json(run_dir / "history.json", m["history"])
    plot_history(m["history"], run_dir / "loss.png", f"{arch} {variant} seed {seed}")
    command = (f"python scripts/text_experiments.py train --arch {arch} --variant {variant} --seeds {seed} && "
               f"python scripts/export.py {os.path.relpath(run_dir, ROOT)} weights/{arch}")
    result = {"arch": arch, "config_name": variant, "config": {**m["config"], "teacher": teacher_spec(m)}, "seed": seed,
              "epochs_run": m["epochs_run"], "best_epoch": m["best_epoch"], "train_seconds": m["train_seconds"],
              "params": m["params"], "test_metrics_keras": {k: m["test"][k] for k in ("accuracy", "macro_f1")},
              "valid_metrics_keras": m["valid"], "data_source": data.source, "command": command,
              "split": {s: int(len(getattr(data, s))) for s in ("train", "valid", "test")}}
    atomic_write_json(run_dir / "result.json", result)
    return run_dir


# ---------------------------------------------------------------- summary
def ensemble_scores(members: list[dict], y_valid, y_test, k: int) -> list[dict]:
    """Probability-averaged ensembles of ``k`` consecutive members (disjoint groups of seeds)."""
    out = []
    for g in range(len(members) // k):
        group = members[g * k:(g + 1) * k]
        pv = np.mean([m["p_valid"] for m in group], axis=0)
        pt = np.mean([m["p_test"] for m in group], axis=0)
        out.append({"seeds": [m["seed"] for m in group], "valid": split_metrics(pv, y_valid),
                    "test": split_metrics(pt, y_test)})
    return out


def mean_std(values) -> dict:
    v = np.asarray(values, float)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "n": int(len(v))}


def summary(data) -> dict:
    rows = []
    for arch_dir in sorted(RUNS.glob("*")):
        for var_dir in sorted(p for p in arch_dir.iterdir() if p.is_dir()):
            for refit in (False, True):
                members = load_members(arch_dir.name, var_dir.name, refit)
                if not members:
                    continue
                row = {"arch": arch_dir.name, "variant": var_dir.name, "protocol": "refit train+valid" if refit else "train only",
                       "refit_epochs": sorted({m["refit_epochs"] for m in members}) if refit else None,
                       "seeds": [m["seed"] for m in members],
                       "valid_macro_f1": mean_std([m["valid"]["macro_f1"] for m in members]),
                       "valid_loss": mean_std([m["valid"]["loss"] for m in members]),
                       "test_macro_f1": mean_std([m["test"]["macro_f1"] for m in members]),
                       "test_accuracy": mean_std([m["test"]["accuracy"] for m in members]),
                       "best_epoch": mean_std([m["best_epoch"] for m in members]),
                       "train_seconds": mean_std([m["train_seconds"] for m in members]),
                       "params": members[0]["params"]}
                ens = ensemble_scores(members, data.valid.y, data.test.y, 5)
                if ens:
                    row["ensembles_of_5"] = {"groups": [e["seeds"] for e in ens],
                                             "valid_macro_f1": mean_std([e["valid"]["macro_f1"] for e in ens]),
                                             "test_macro_f1": mean_std([e["test"]["macro_f1"] for e in ens]),
                                             "test_accuracy": mean_std([e["test"]["accuracy"] for e in ens])}
                rows.append(row)
    return {"rows": rows}


def select(arch: str, variants: list[str], data) -> dict:
    """The served candidate, on validation only: every train-only member of ``variants`` and every
    5-member ensemble of consecutive seeds (0-4, 5-9, ...). Highest validation macro-F1; ties: lower
    validation loss, then fewer parameters (a single member before an ensemble)."""
    candidates = []
    for variant in variants:
        members = load_members(arch, variant)
        for m in members:
            candidates.append({"variant": variant, "seeds": [m["seed"]], "params": m["params"],
                               "valid": m["valid"], "test": m["test"]})
        for e in ensemble_scores(members, data.valid.y, data.test.y, 5):
            candidates.append({"variant": variant, "seeds": e["seeds"], "params": members[0]["params"] * 5,
                               "valid": e["valid"], "test": e["test"]})
    key = lambda c: (-round(c["valid"]["macro_f1"], 6), round(c["valid"]["loss"], 6), c["params"])  # noqa: E731
    chosen = min(candidates, key=key)
    return {"arch": arch, "rule": select.__doc__.split("only: ", 1)[1].replace("\n    ", " ").strip(),
            "chosen": chosen, "candidates": sorted(candidates, key=key)}


def plot_rows(rows: list[dict], path: Path) -> None:
    """Validation and test macro-F1 (mean ± std over seeds) per arch x variant x protocol, the baselines as lines."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 4))
    labels = [f"{r['arch']} {r['variant']}" + (" refit" if r["refit_epochs"] else "") for r in rows]
    x = np.arange(len(rows))
    for off, key, name in ((-0.18, "valid_macro_f1", "validation"), (0.18, "test_macro_f1", "test")):
        if key == "valid_macro_f1":
            vals = [r[key]["mean"] if not r["refit_epochs"] else np.nan for r in rows]
        else:
            vals = [r[key]["mean"] for r in rows]
        ax.bar(x + off, vals, 0.36, yerr=[r[key]["std"] for r in rows], label=f"{name} (mean ± std over seeds)", capsize=3)
    for value, name, style in ((0.787, "SVM (NusaX protocol) 0.787", "--"), (0.747, "LR 0.747", ":")):
        ax.axhline(value, color="grey", linestyle=style, linewidth=1, label=name)
    ax.set_xticks(x, labels, rotation=20, ha="right"), ax.set_ylim(0.55, 0.85), ax.set_ylabel("macro-F1")
    ax.legend(fontsize=7, loc="lower right"), ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def markdown(rows: list[dict]) -> str:
    def ms(d):
        return f"{d['mean']:.4f} ± {d['std']:.4f}"
    lines = ["| arch | variant | protocol | n | valid macro-F1 | test macro-F1 | test accuracy | best epoch | s / run | 5-member ensembles: n, valid F1, test F1 |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        e = r.get("ensembles_of_5")
        ens = f"{e['test_macro_f1']['n']}: {ms(e['valid_macro_f1'])} / {ms(e['test_macro_f1'])}" if e else "-"
        lines.append(f"| {r['arch']} | {r['variant']} | {r['protocol']} | {r['test_macro_f1']['n']} | {ms(r['valid_macro_f1'])} | "
                     f"{ms(r['test_macro_f1'])} | {ms(r['test_accuracy'])} | {r['best_epoch']['mean']:.1f} | "
                     f"{r['train_seconds']['mean']:.0f} | {ens} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("train", "refit", "ensemble"):
        s = sub.add_parser(name)
        s.add_argument("--arch", required=True, choices=["rnn", "lstm"])
        s.add_argument("--variant", required=True)
        s.add_argument("--seeds", default="0-4")
        if name == "refit":
            s.add_argument("--epochs", type=int, default=None,
                           help="epoch count (default: the rounded mean best epoch of the train-only runs of these seeds)")
        if name == "ensemble":
            s.add_argument("--out", type=Path, required=True)
            s.add_argument("--refit-epochs", type=int, default=None)
    sub.add_parser("summary")
    s = sub.add_parser("select")
    s.add_argument("--arch", required=True, choices=["rnn", "lstm"])
    s.add_argument("--variants", nargs="+", required=True)
    args = p.parse_args(argv)
    data = load_nusax()
    if args.cmd == "select":
        sel = select(args.arch, args.variants, data)
        atomic_write_json(ROOT / "reports" / f"text_selection_{args.arch}.json", sel)
        for c in sel["candidates"]:
            print(f"{c['variant']:8s} seeds {','.join(map(str, c['seeds'])):10s} valid F1 {c['valid']['macro_f1']:.4f} "
                  f"loss {c['valid']['loss']:.4f} | test F1 {c['test']['macro_f1']:.4f}" + ("  <- chosen" if c is sel["chosen"] else ""))
        return
    if args.cmd == "summary":
        rep = summary(data)
        rep["markdown"] = markdown(rep["rows"])
        atomic_write_json(REPORT, rep)
        plot_rows(rep["rows"], ROOT / "reports" / "figures" / "text_variants.png")
        print(rep["markdown"])
        return
    seeds = parse_seeds(args.seeds)
    if args.cmd == "ensemble":
        if len(seeds) == 1:
            print(f"[single] {single_member_run(args.arch, args.variant, seeds[0], data)}")
        else:
            build_ensemble(args.arch, args.variant, seeds, args.out, data, args.refit_epochs)
        return
    cache: dict = {}
    epochs = None
    if args.cmd == "refit":
        epochs = args.epochs
        if epochs is None:
            found = [m["best_epoch"] for m in load_members(args.arch, args.variant) if m["seed"] in seeds]
            if not found:
                raise SystemExit("refit needs --epochs or finished train-only runs of these seeds")
            epochs = int(round(float(np.mean(found))))
        print(f"[refit] {args.arch}/{args.variant}: {epochs} epochs on train + validation", flush=True)
    for seed in seeds:
        train_member(args.arch, args.variant, seed, data, refit_epochs=epochs, teacher_cache=cache)


if __name__ == "__main__":
    main()
