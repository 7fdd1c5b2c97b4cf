"""An export killed mid-write leaves the old files intact and loadable (issue 18, faults).

``scripts/export.py`` writes the new model folder next to ``weights/<arch>/`` and publishes it with
``scratch_models.io_utils.replace_dir``. A child process runs that publication on real model folders and is
SIGKILLed at each step (while the new folder is being written, just before the swap, just after it, and in
the fallback for systems without an atomic exchange, between its two renames); afterwards the folder is
either the complete old export or the complete new one -- every file matching its manifest's sha256, and
the service's repository loads it and answers with that version's own weights -- and, where the fallback
died between its renames, :func:`recover_dir` (run by the next export) puts the old folder back.
"""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "service"))

from scratch_models.io_utils import backup_dir, recover_dir, replace_dir, sha256_file  # noqa: E402
from service.registry import ModelRegistry  # noqa: E402

pytest.importorskip("keras", reason="the model folders are built with Keras (tests/service/tiny_weights.py)")
import tiny_weights  # noqa: E402

ARCH = "rnn"
# The child: publishes `new` over `target` the way scripts/export.py does (staging folder beside the target,
# then replace_dir), printing PAUSE and sleeping at the step named by argv[1], where the test kills it.
CHILD = textwrap.dedent("""
    import os, shutil, sys, tempfile, time
    from pathlib import Path
    sys.path.insert(0, {root!r})
    from scratch_models import io_utils

    step, new, target = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])

    def pause(at):
        if at == step:
            print("PAUSE", flush=True)
            time.sleep(120)

    real_exchange, real_replace, replaces = io_utils._exchange, os.replace, []
    def exchange(a, b):
        if step.startswith("fallback"):
            return False
        pause("before-swap")
        done = real_exchange(a, b)
        pause("after-swap")
        return done
    def replace(a, b):
        real_replace(a, b)
        replaces.append(b)
        if len(replaces) == 1:
            pause("fallback-between")   # the old folder moved to its backup, the new one not yet in place
    io_utils._exchange, io_utils.os.replace = exchange, replace

    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix="." + target.name + "-"))
    files = sorted(new.iterdir())
    for i, f in enumerate(files):
        shutil.copyfile(f, staging / f.name)
        if i == len(files) // 2:
            pause("staging")
    io_utils.replace_dir(staging, target)
    print("DONE", flush=True)
""")


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    """Two exports of the same arch with different weights (seeds 0 and 1)."""
    root = tmp_path_factory.mktemp("exports")
    return {name: tiny_weights.build_arch(root / name, ARCH, seed=seed) for seed, name in enumerate(("old", "new"))}


def run_child(step: str, new: Path, target: Path, tmp_path: Path) -> str:
    """Run the child to ``step`` and SIGKILL it there (or let it finish: step 'none'); its last line."""
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(root=str(ROOT)))
    proc = subprocess.Popen([sys.executable, str(script), step, str(new), str(target)], stdout=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stdout.readline().strip()
        if line == "PAUSE":
            proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) in (0, -signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
    return line


def which_export(folder: Path, exports: dict[str, Path]) -> str:
    """'old' or 'new': every file of ``folder`` is that export's, byte for byte, and matches the manifest."""
    manifest = tiny_weights.read_manifest(folder)
    assert {p.name for p in folder.iterdir()} == set(manifest["files"]) | {"manifest.json"}
    for name, digest in manifest["files"].items():
        assert sha256_file(folder / name) == digest, name
    matches = [k for k, src in exports.items() if sha256_file(folder / "weights.npz") == sha256_file(src / "weights.npz")]
    assert len(matches) == 1
    return matches[0]


def assert_serves(root: Path, version: Path) -> None:
    """The service's repository loads ``root/ARCH`` and answers with ``version``'s own weights."""
    registry = ModelRegistry(root).load_all()
    entry = registry.get(ARCH)
    assert entry.state == "ready", entry.reason
    backend = registry.backend(ARCH, "scratch")
    ids = np.asarray(backend.encode_texts(["makanannya enak sekali"]))
    import scratch_models

    np.testing.assert_allclose(backend.predict_proba(ids), scratch_models.load(version).predict(ids), atol=1e-6)


@pytest.mark.parametrize("step,expected", [("staging", "old"), ("before-swap", "old"), ("after-swap", "new"),
                                           ("fallback-between", "old"), ("none", "new"), ("fallback-none", "new")])
def test_an_export_killed_at_any_step_leaves_a_whole_export(exports, tmp_path, step, expected):
    root = tmp_path / "weights"
    target = root / ARCH
    shutil.copytree(exports["old"], target)
    line = run_child(step, exports["new"], target, tmp_path)
    assert line == ("DONE" if step.endswith("none") else "PAUSE")
    if step == "fallback-between":  # the one instant without the folder: its backup is whole
        assert not target.exists() and which_export(backup_dir(target), exports) == "old"
        assert recover_dir(target)  # what the next export does first
        assert not backup_dir(target).exists()
    assert which_export(target, exports) == expected
    assert_serves(root, exports[expected])
    # a later export over the leftovers (a staging folder, nothing else) publishes cleanly
    staging = root / ".rnn-again"
    shutil.copytree(exports["new"], staging)
    replace_dir(staging, target)
    assert which_export(target, exports) == "new" and not staging.exists() and not backup_dir(target).exists()

