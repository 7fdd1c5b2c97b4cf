"""Validates KServe resources against the KServe SDK's own schema: the OpenAPI-generated model classes of
``kserve`` (``V1alpha1ServingRuntime``, ``V1beta1InferenceService``, ...) and of ``kubernetes.client`` for the
core types inside them. Every key must be a field of its type (unknown keys are errors, as ``kubectl
--validate=strict`` makes them), every value of the field's type, and every required field present (the
generated constructors refuse ``None``). Prints one JSON line: ``{"checked": [...], "errors": [...]}``.

Run by ``test_kubernetes.py`` with KSERVE_PYTHON (the SDK lives in its own venv):

    $KSERVE_PYTHON tests/protocols/kserve_schema.py deploy/kubernetes/kserve.yaml
"""
from __future__ import annotations

import importlib.metadata
import json
import re
import sys

import kserve
import kserve.models
import kubernetes.client
import yaml

KINDS = {("serving.kserve.io/v1alpha1", "ServingRuntime"): "V1alpha1ServingRuntime",
         ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"): "V1alpha1ClusterServingRuntime",
         ("serving.kserve.io/v1beta1", "InferenceService"): "V1beta1InferenceService"}
PRIMITIVES = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,), "object": (object,),
              "datetime": (str,), "date": (str,)}


def model_class(name: str):
    return getattr(kserve.models, name, None) or getattr(kubernetes.client, name)


def container(type_name: str) -> tuple[str, str] | None:
    """('list' | 'dict', the item type) for both generators' spellings (``list[X]``/``List[X]``,
    ``dict(str, X)``/``Dict[str, X]``); None for a plain type."""
    if type_name.startswith(("list[", "List[")):
        return "list", type_name[5:-1]
    if type_name.startswith("dict("):
        return "dict", re.match(r"dict\(([^,]*), (.*)\)", type_name).group(2)
    if type_name.startswith("Dict["):
        return "dict", type_name[5:-1].split(", ", 1)[1]
    return None


def check(value, type_name: str, path: str, errors: list[str]) -> None:
    kind = container(type_name)
    if kind is not None:
        wanted = list if kind[0] == "list" else dict
        if not isinstance(value, wanted):
            errors.append(f"{path}: expected {'a list' if wanted is list else 'an object'} ({type_name}), "
                          f"found {type(value).__name__}")
            return
        items = enumerate(value) if wanted is list else value.items()
        for k, v in items:
            check(v, kind[1], f"{path}[{k}]" if wanted is list else f"{path}.{k}", errors)
        return
    if type_name in PRIMITIVES:
        ok = isinstance(value, PRIMITIVES[type_name]) and not (type_name in ("int", "float") and isinstance(value, bool))
        if not ok:
            errors.append(f"{path}: expected {type_name}, found {type(value).__name__} {value!r}")
        return
    klass = model_class(type_name)
    if not isinstance(value, dict):
        errors.append(f"{path}: expected an object ({type_name}), found {type(value).__name__}")
        return
    by_key = {key: attr for attr, key in klass.attribute_map.items()}
    for key, item in value.items():
        if key not in by_key:
            errors.append(f"{path}.{key}: not a field of {type_name} (fields: {', '.join(sorted(by_key))})")
        else:
            check(item, klass.openapi_types[by_key[key]], f"{path}.{key}", errors)


def construct(value, type_name: str):
    """The typed object, through the generated constructors (which refuse a missing required field)."""
    kind = container(type_name)
    if kind is not None:
        if kind[0] == "list":
            return [construct(v, kind[1]) for v in value]
        return {k: construct(v, kind[1]) for k, v in value.items()}
    if type_name in PRIMITIVES:
        return value
    klass = model_class(type_name)
    kwargs = {attr: construct(value[key], klass.openapi_types[attr])
              for attr, key in klass.attribute_map.items() if key in value}
    return klass(**kwargs)


def validate(doc: dict, where: str) -> list[str]:
    type_name = KINDS.get((doc.get("apiVersion"), doc.get("kind")))
    if type_name is None:
        return [f"{where}: {doc.get('apiVersion')}/{doc.get('kind')} is not a KServe kind this checks"]
    errors: list[str] = []
    check(doc, type_name, where, errors)
    if not errors:
        try:
            construct(doc, type_name)
        except (ValueError, TypeError) as exc:
            errors.append(f"{where}: {exc}")
    return errors


if __name__ == "__main__":
    checked, errors = [], []
    for path in sys.argv[1:]:
        with open(path, encoding="utf-8") as fh:
            for i, doc in enumerate(d for d in yaml.safe_load_all(fh) if d):
                where = f"{path}#{i}({doc.get('kind')})"
                checked.append(where)
                errors += validate(doc, where)
    print(json.dumps({"checked": checked, "errors": errors, "kserve": importlib.metadata.version("kserve")}))
