"""``scratch-serve``: the service and its model files from the command line.

    scratch-serve serve [--host H] [--port P] [--model-repository DIR]   the service (settings from the environment)
    scratch-serve convert MODEL_FILE OUT_DIR                               Keras file -> artifact + manifest + parity line
    scratch-serve verify MODEL_DIR [--data DIR]                            both backends agree? (random inputs or data)
    scratch-serve predict MODEL_DIR FILE...                                images, or a text file (one text per line)
    scratch-serve inspect MODEL_DIR                                        layers, output shapes, params, engine support

Exit codes: 0 success, 1 the command ran and the answer is no (a refused file, backends that disagree),
2 bad usage or unreadable input. Errors are one line on stderr.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

TOL = 1e-4


class CliError(Exception):
    """One line for stderr and an exit code."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def _load(model_dir: Path, backends=("scratch", "keras")):
    """A version folder (our export, a `convert` output or a bare Keras file) loaded like the service does."""
    from .repository.model import load_version

    model_dir = Path(model_dir).resolve()
    if not model_dir.is_dir():
        raise CliError(f"{model_dir} is not a folder")
    entry = load_version(model_dir.name, 1, model_dir, model_dir, backends,
                         cache_dir=Path(os.environ.get("CONVERT_CACHE", Path.home() / ".cache" / "scratch-serve")),
                         max_bytes=int(os.environ.get("MAX_MODEL_FILE_BYTES", 2 * 1024**3)))
    if entry.state != "ready":
        raise CliError(f"{model_dir.name}: {entry.reason}", code=1)
    return entry


def cmd_serve(args) -> int:
    for key, value in (("HOST", args.host), ("PORT", args.port), ("MODEL_REPOSITORY", args.model_repository)):
        if value is not None:
            os.environ[key] = str(value)
    from .__main__ import main

    main()
    return 0


def cmd_convert(args) -> int:
    from .backends.base import BackendLoadError
    from .repository import convert

    src, out = Path(args.model_file), Path(args.out_dir)
    if not src.is_file():
        raise CliError(f"{src} is not a file")
    if out.exists() and any(out.iterdir()):
        raise CliError(f"{out} exists and is not empty; give a new folder")
    if out.exists():
        out.rmdir()
    try:
        manifest = convert.convert(src, out, name=args.name or out.name, vectorizer_file=args.vectorizer,
                                   labels_file=args.labels)
    except BackendLoadError as exc:
        raise CliError(f"{src.name}: {exc}", code=1) from None
    shutil.copyfile(src, out / src.name)
    if args.vectorizer:
        shutil.copyfile(args.vectorizer, out / Path(args.vectorizer).name)
    parity, scratch = manifest["parity"], manifest["scratch"]
    print(f"converted {src.name} -> {out}/ ({manifest['input']['kind']} input {manifest['input']['shape']}, "
          f"{len(manifest['classes'])} classes, {manifest['params']} params)")
    if parity:
        print(f"parity vs Keras on {parity['n']} random inputs: agreement {parity['agreement']:.2%}, "
              f"max |dp| {parity['max_abs_prob_diff']:.3g}")
    if scratch["status"] != "ok":
        print(f"scratch backend: {scratch['reason']}")
        return 1
    return 0


def _progress(iterable, total: int, desc: str):
    try:
        from tqdm import tqdm
        return tqdm(iterable, total=total, desc=desc, file=sys.stderr, leave=False)
    except ImportError:
        return iterable


def _data_batches(entry, data: Path | None, n: int):
    from .repository.convert import random_inputs

    spec = entry.input_spec
    if data is None:
        return random_inputs(spec, n), f"{n} random inputs"
    if spec.kind == "image":
        from .inputs import decode_images
        files = sorted(p for p in Path(data).rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        files = files[::max(1, len(files) // n)][:n]   # spread over the folder (every class of a split)
        if not files:
            raise CliError(f"no PNG/JPEG files under {data}")
        import base64
        items = [base64.b64encode(p.read_bytes()).decode() for p in files]
        return decode_images(items, 1 << 26, spec=spec), f"{len(files)} images from {data}"
    if spec.kind == "text" and entry.vectorizer is not None:
        texts = _texts(Path(data), n)
        return np.asarray(entry.vectorizer.transform(texts), np.int32), f"{len(texts)} texts from {data}"
    raise CliError(f"--data needs an image model or a text model with a vectorizer; this one takes {spec.kind}")


def _texts(path: Path, n: int) -> list[str]:
    import csv
    files = [path] if path.is_file() else sorted(path.rglob("test.csv")) or sorted(path.rglob("*.txt"))
    if not files:
        raise CliError(f"no text file (a .txt, one text per line, or a test.csv with a 'text' column) under {path}")
    f = files[0]
    if f.suffix == ".csv":
        with open(f, newline="", encoding="utf-8") as fh:
            return [row["text"] for row in csv.DictReader(fh)][:n]
    return [line for line in f.read_text("utf-8").splitlines() if line.strip()][:n]


def cmd_verify(args) -> int:
    entry = _load(args.model_dir)
    missing = {"scratch", "keras"} - set(entry.backends)
    if missing:
        raise CliError(f"cannot compare: {', '.join(f'{b}: {entry.failures.get(b)}' for b in sorted(missing))}", code=1)
    x, what = _data_batches(entry, args.data, args.n)
    ks, ss = [], []
    for start in _progress(range(0, len(x), args.batch), (len(x) + args.batch - 1) // args.batch, "verify"):
        part = x[start:start + args.batch]
        ks.append(entry.backends["keras"].predict_proba(part))
        ss.append(entry.backends["scratch"].predict_proba(part))
    k, s = np.concatenate(ks), np.concatenate(ss)
    agreement, dp = float(np.mean(k.argmax(1) == s.argmax(1))), float(np.abs(k.astype(np.float64) - s).max())
    result = {"model": entry.name, "inputs": what, "n": int(len(x)), "agreement": agreement, "max_abs_prob_diff": dp}
    print(json.dumps(result) if args.json else
          f"{entry.name}: {what}: agreement {agreement:.2%}, max |dp| {dp:.3g} ({'ok' if dp <= TOL and agreement == 1 else 'DIFFERS'})")
    return 0 if agreement == 1.0 and dp <= TOL else 1


def cmd_predict(args) -> int:
    import base64

    entry = _load(args.model_dir, (args.backend,))
    backend = entry.backends[args.backend]
    files = [Path(f) for f in args.files]
    for f in files:
        if not f.is_file():
            raise CliError(f"{f} is not a file")
    if entry.input_spec.kind == "image":
        from .inputs import decode_images
        names = [str(f) for f in files]
        batch = decode_images([base64.b64encode(f.read_bytes()).decode() for f in files], 1 << 26,
                              spec=entry.input_spec)
    elif entry.vectorizer is not None:
        from .inputs import check_texts
        names = [line for f in files for line in f.read_text("utf-8").splitlines() if line.strip()]
        batch = np.asarray(entry.vectorizer.transform(check_texts(names)), np.int32)
    else:
        raise CliError(f"{entry.name} takes {entry.input_spec.kind} tensors; predict reads images or texts")
    probs = backend.predict_proba(batch)
    rows = [{"input": n, "label": entry.classes[int(p.argmax())], "probability": float(p.max()),
             "probabilities": p.astype(float).round(6).tolist()} for n, p in zip(names, probs)]
    if args.json:
        print(json.dumps({"model": entry.name, "backend": args.backend, "classes": list(entry.classes),
                          "predictions": rows}))
    else:
        width = min(60, max(len(r["input"]) for r in rows))
        for r in rows:
            print(f"{r['input'][-width:]:<{width}}  {r['label']:<12} {r['probability']:.4f}")
    return 0


def cmd_inspect(args) -> int:
    from .repository import sources

    folder = Path(args.model_dir)
    if not folder.is_dir():
        raise CliError(f"{folder} is not a folder")
    artifact = folder if (folder / "architecture.json").is_file() else None
    if artifact is not None:
        import scratch_models
        try:
            model = scratch_models.load(artifact)
        except Exception as exc:
            raise CliError(f"{folder.name}: the scratch engine could not load it ({type(exc).__name__}: {exc})", 1) from None
        print(model.summary())
        print(f"params: {model.count_params()}; input {model.input_shape}; output {model.output_shape}; "
              "scratch engine: supported")
        return 0
    model_file, _ = sources.keras_files(folder)
    if model_file is None:
        raise CliError(f"{folder} holds neither architecture.json nor a Keras file")
    from .repository.keras_files import load_keras_model, split_network
    from scratch_models.layers import layer_from_keras_config
    network, vec = split_network(load_keras_model(model_file))
    refused = 0
    print(f"{model_file.name}: input {tuple(network.inputs[0].shape)}" + (" (TextVectorization split off)" if vec else ""))
    for layer in network.layers:
        try:
            shape = tuple(layer.output.shape)
        except Exception:
            shape = "?"
        try:
            if type(layer).__name__ != "InputLayer":
                layer_from_keras_config(type(layer).__name__, layer.get_config())
            support = "ok"
        except Exception as exc:
            support, refused = f"NOT SUPPORTED ({exc})", refused + 1
        print(f"  {layer.name:<28} {type(layer).__name__:<22} {str(shape):<20} {layer.count_params():>9}  {support}")
    print(f"params: {network.count_params()}; scratch engine: {'supported' if not refused else f'{refused} layer(s) refused'}")
    return 0 if not refused else 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scratch-serve", description="Serve Keras models on Keras and on the scratch "
                                "NumPy engine; convert, verify, inspect model files.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the service (settings from the environment; see README)")
    s.add_argument("--host"), s.add_argument("--port", type=int), s.add_argument("--model-repository", type=Path)
    s.set_defaults(func=cmd_serve)
    c = sub.add_parser("convert", help="Keras file -> scratch artifact + manifest in OUT_DIR, with a parity line")
    c.add_argument("model_file", type=Path), c.add_argument("out_dir", type=Path)
    c.add_argument("--name", help="model name in the manifest (default: OUT_DIR's name)")
    c.add_argument("--vectorizer", type=Path, help="a Keras file holding the fitted TextVectorization")
    c.add_argument("--labels", type=Path, help="labels.txt: one class name per line")
    c.set_defaults(func=cmd_convert)
    v = sub.add_parser("verify", help="agreement and max |dp| of both backends")
    v.add_argument("model_dir", type=Path)
    v.add_argument("--data", type=Path, help="images folder, or a text file / folder with test.csv (default: random inputs)")
    v.add_argument("--n", type=int, default=256, help="items (default 256)")
    v.add_argument("--batch", type=int, default=64)
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=cmd_verify)
    pr = sub.add_parser("predict", help="classify images, or the lines of text files")
    pr.add_argument("model_dir", type=Path), pr.add_argument("files", nargs="+")
    pr.add_argument("--backend", choices=("scratch", "keras"), default="scratch")
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(func=cmd_predict)
    i = sub.add_parser("inspect", help="layers, output shapes, params and what the scratch engine supports")
    i.add_argument("model_dir", type=Path)
    i.set_defaults(func=cmd_inspect)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except CliError as exc:
        print(f"scratch-serve {args.command}: error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # any other failure: one line, not a traceback
        print(f"scratch-serve {args.command}: error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
