"""The one place the protocol routes meet the model repository (``docs/repository.md``): names, versions,
readiness and backends.

Both protocols address a model as ``name`` and an optional ``version`` (digits); without a version the
repository's choice (the highest version that loaded) is served. A request looks its version up once and
takes spec and backend from that same version, whatever is published meanwhile.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..backends.base import Backend, InputSpec


@dataclass(frozen=True)
class ModelRef:
    """One model version as the protocols describe it; ``entry`` is the repository's ``ModelVersion``."""
    entry: object
    name: str
    version: str                      # the version served (the one asked for, or the repository's default)
    versions: tuple[str, ...]         # every version of this model that may be asked for
    input_spec: InputSpec | None      # None while loading or when the files failed
    classes: tuple[str, ...]
    state: str                        # "loading" | "ready" (at least one backend) | "failed"
    reason: str | None                # why it failed

    def not_ready(self, backend_name: str) -> str | None:
        """None when ``backend_name`` serves this version, else why not."""
        if backend_name in self.entry.backends:
            return None
        return self.entry.failures.get(backend_name) or self.reason or self.state

    def backend(self, backend_name: str) -> Backend:
        """The loaded backend (503 with the reason when it is not)."""
        return self.entry.backend(backend_name)

    @property
    def vectorizer(self):
        return self.entry.vectorizer

    @property
    def vocabulary_size(self) -> int | None:
        """Token ids must be below this: the spec's, else the vectorizer's vocabulary (a manifest without it)."""
        spec = self.input_spec
        if spec is not None and spec.vocabulary_size:
            return spec.vocabulary_size
        return len(self.vectorizer.vocabulary) if self.vectorizer is not None else None


def _ref(entry) -> ModelRef:
    return ModelRef(entry, entry.name, str(entry.version), tuple(str(v) for v in entry.versions), entry.input_spec,
                    tuple(entry.classes), entry.state, entry.reason)


def resolve(registry, name: str, version: str | None = None) -> ModelRef:
    """The model ``name`` at ``version`` (None: the served one); 404 unknown model or version, 503 loading."""
    return _ref(registry.get(name, version=version))


def all_versions(registry, name: str) -> list[ModelRef]:
    """Every loaded (or failed) version of ``name``, lowest first; 404 for an unknown model."""
    registry.get(name)
    return [_ref(e) for _, e in sorted(registry.models.get(name, {}).items())]


def server_ready(registry) -> bool:
    return bool(registry.ready)


def loaded(registry) -> bool:
    return bool(registry.loaded)
