"""`scratch-serve` subcommands, called in process (``service.cli.main``) and, for --help and bad usage, as the
console script would be: exit codes 0 (done), 1 (the answer is no), 2 (bad usage); errors in one line."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from service import cli

ROOT = Path(__file__).resolve().parents[2]
PEERS = ROOT.parent / "shared" / "fixtures" / "peer-models"
sys.path.insert(0, str(ROOT / "tests" / "service"))


@pytest.fixture(scope="module")
def peer_cnn() -> Path:
    path = PEERS / "cnn_fixed_batch64.h5"
    if not path.is_file():
        pytest.skip(f"{path} is absent (see the peer-models README)")
    return path


@pytest.mark.parametrize("command", ["", "serve", "convert", "verify", "predict", "inspect"])
def test_help(command):
    r = subprocess.run([sys.executable, "-m", "service.cli", *([command] if command else []), "--help"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0 and "usage: scratch-serve" in r.stdout


def test_bad_usage_exits_2():
    r = subprocess.run([sys.executable, "-m", "service.cli", "verify"], capture_output=True, text=True, cwd=ROOT,
                       timeout=120)
    assert r.returncode == 2 and "required" in r.stderr


def test_convert_verify_predict_inspect(peer_cnn, tmp_path, capsys):
    out = tmp_path / "converted"
    assert cli.main(["convert", str(peer_cnn), str(out)]) == 0
    text = capsys.readouterr().out
    assert "parity vs Keras on 64 random inputs: agreement 100.00%" in text
    assert {"manifest.json", "architecture.json", "weights.npz", peer_cnn.name} <= {p.name for p in out.iterdir()}
    assert cli.main(["convert", str(peer_cnn), str(out)]) == 2           # not empty
    assert "not empty" in capsys.readouterr().err

    assert cli.main(["verify", str(out), "--n", "40", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 40 and result["agreement"] == 1.0 and result["max_abs_prob_diff"] <= 1e-4

    from PIL import Image
    images = []
    for i in range(3):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(path)
        images.append(str(path))
    assert cli.main(["predict", str(out), *images, "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert [p["input"] for p in body["predictions"]] == images and len(body["classes"]) == 10
    keras_probs = None
    assert cli.main(["predict", str(out), *images, "--json", "--backend", "keras"]) == 0
    keras_probs = np.array([p["probabilities"] for p in json.loads(capsys.readouterr().out)["predictions"]])
    np.testing.assert_allclose(np.array([p["probabilities"] for p in body["predictions"]]), keras_probs, atol=1e-5)
    assert cli.main(["predict", str(out), images[0]]) == 0
    assert images[0][-30:] in capsys.readouterr().out                       # the table

    assert cli.main(["inspect", str(out)]) == 0
    assert "scratch engine: supported" in capsys.readouterr().out
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copyfile(peer_cnn, bare / "model.h5")
    assert cli.main(["inspect", str(bare)]) == 0
    assert "Conv2D" in capsys.readouterr().out


def test_text_model_predict_and_verify_with_data(tmp_path, capsys):
    import tiny_weights
    folder = tiny_weights.build_arch(tmp_path, "lstm")
    texts = tmp_path / "texts.txt"
    texts.write_text("Makanannya enak sekali\n\nSaya kecewa, pesanan datang terlambat\n")
    assert cli.main(["predict", str(folder), str(texts), "--json"]) == 0
    assert [p["input"] for p in json.loads(capsys.readouterr().out)["predictions"]] == [
        "Makanannya enak sekali", "Saya kecewa, pesanan datang terlambat"]
    assert cli.main(["verify", str(folder), "--data", str(texts)]) == 0
    assert "2 texts" in capsys.readouterr().out


def test_errors_are_one_line_with_exit_codes(tmp_path, capsys):
    assert cli.main(["inspect", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("scratch-serve inspect: error:")
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "model.keras").write_bytes(b"garbage")
    assert cli.main(["verify", str(junk)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "neither a Keras 3 .keras zip nor a legacy HDF5" in err
