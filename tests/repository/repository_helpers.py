"""Helpers of the repository tests: model repositories built in temporary folders, an in-process client.

A module of its own (not ``conftest``): test files import these by a name no other test folder uses.

Peer models (real Keras files other teams trained) come from ../shared/fixtures/peer-models/ and are
copied into the temporary repository (the tests skip with the reason when that folder is absent).
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests" / "service"))

import tiny_weights  # noqa: E402
from service_helpers import app_client, make_settings  # noqa: E402,F401

PEER_DIR = Path(os.environ.get("PEER_MODELS_DIR", ROOT.parent / "shared" / "fixtures" / "peer-models"))
TOKEN = "s3cret-admin-token"


def add_version(repo: Path, name: str, version: int | None, arch: str = "cnn", seed: int = 0) -> Path:
    """Build a tiny export of ``arch`` (tests/service/tiny_weights.py) as ``repo/name[/version]``, atomically
    (built beside, then renamed into place, as a person publishing a version would)."""
    staging = repo.parent / f".staging-{name}-{version}-{seed}"
    shutil.rmtree(staging, ignore_errors=True)
    built = tiny_weights.build_arch(staging, arch, seed=seed)
    target = repo / name if version is None else repo / name / str(version)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(built, target)
    shutil.rmtree(staging, ignore_errors=True)
    return target


def tamper(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
