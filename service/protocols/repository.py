"""The one place the protocol routes meet the model repository (``docs/repository.md``): names, versions,
readiness and backends.

Both protocols address a model as ``name`` and an optional ``version`` (digits); without a version the
repository's choice (the highest version that loaded) is served. A request looks its version up once and
takes spec and backend from that same version, whatever is published meanwhile.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..backends.base import Backend, InputSpec
from ..errors import InvalidInput


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

    def backend(self, asked: str | None, default: str, field: str) -> Backend:
        """The backend asked for, else the default, as /predict chooses: when the default did not load for this
        version but another did, a request that names none is a 400 naming ``field``; 503 (with the reason)
        when the backend is unavailable."""
        name = asked or default
        if asked is None and name not in self.entry.backends and self.entry.backends:
            reason = (f"the default backend {name!r} is unavailable for {self.name} ({self.entry.failures.get(name)}); "
                      f"name one of {', '.join(self.entry.backends)} in {field}")
            raise InvalidInput(f"{field}: {reason}", field=field, reason=reason)
        return self.entry.backend(name)

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
