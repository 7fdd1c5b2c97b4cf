"""The names the service used before the model repository (:mod:`service.repository`), kept for callers.

``ModelRegistry`` is :class:`service.repository.ModelRepository`; ``ArchEntry`` is a model version. The three
committed models are ordinary entries of the repository; ``ARCHS`` and ``ARCH_KINDS`` name them for
``/parity``, which compares the backends on their test splits.
"""
from __future__ import annotations

from .backends.base import Backend, BackendLoadError, InputSpec, verify_file  # noqa: F401
from .repository import BACKENDS, ModelRepository, ModelVersion  # noqa: F401

ARCHS = ("cnn", "rnn", "lstm")
ARCH_KINDS = {"cnn": "image", "rnn": "text", "lstm": "text"}

ModelRegistry = ModelRepository
ArchEntry = ModelVersion
