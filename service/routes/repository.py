"""The repository endpoints (the names of the KServe/MLServer repository extension), behind ``ADMIN_TOKEN``:

    POST /repository/index                  every model folder and version with its state
    POST /repository/models/{name}/load     (re)load a model: new or changed versions load, then replace the old
    POST /repository/models/{name}/unload   stop serving a model (requests in flight finish)

Loading runs in a worker thread, one load at a time; the old version serves until the new one is loaded
and probed, and keeps serving if the new one fails (the answer then says why).
"""
from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Body, Path, Query
from starlette.concurrency import run_in_threadpool

from ..deps import AdminDep, RegistryDep
from ..repository.names import NAME_PATTERN, check_name
from ..schemas import RepositoryAction, RepositoryIndexRequest, RepositoryModel, error_responses

router = APIRouter(prefix="/repository", tags=["repository"], dependencies=[AdminDep])
NameParam = Annotated[str, Path(description="A model folder's name", pattern=NAME_PATTERN, max_length=64)]
ERRORS = error_responses(401, 403, 404, 422)


@router.post("/index", response_model=list[RepositoryModel], responses=ERRORS, summary="List the repository")
async def index(registry: RegistryDep,
                body: Annotated[RepositoryIndexRequest | None, Body()] = None) -> list[RepositoryModel]:
    rows = [RepositoryModel(**r) for r in await run_in_threadpool(registry.index)]
    if body is not None and body.ready is not None:
        rows = [r for r in rows if (r.state == "READY") == body.ready]
    return rows


def _rows(registry, name: str) -> list[RepositoryModel]:
    return [RepositoryModel(**r) for r in registry.index() if r["name"] == name]


@router.post("/models/{name}/load", response_model=RepositoryAction, responses=ERRORS,
             summary="Load or reload a model (new versions replace old ones once loaded)")
async def load(name: NameParam, registry: RegistryDep,
               force: Annotated[bool, Query(description="Also retry versions that failed and did not change")] = False,
               ) -> RepositoryAction:
    check_name(name, "name")
    t0 = time.perf_counter()
    await run_in_threadpool(registry.load, name, force)
    return RepositoryAction(name=name, action="load", versions=_rows(registry, name),
                            seconds=round(time.perf_counter() - t0, 3))


@router.post("/models/{name}/unload", response_model=RepositoryAction, responses=ERRORS,
             summary="Stop serving a model")
async def unload(name: NameParam, registry: RegistryDep) -> RepositoryAction:
    check_name(name, "name")
    t0 = time.perf_counter()
    await run_in_threadpool(registry.unload, name)
    return RepositoryAction(name=name, action="unload", versions=_rows(registry, name),
                            seconds=round(time.perf_counter() - t0, 3))
