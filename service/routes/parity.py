"""GET /parity: how closely the scratch engine reproduces Keras on the test split."""
from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from ..deps import ParityDep
from ..registry import ARCHS
from ..schemas import ParityResult, error_responses

router = APIRouter(tags=["parity"])


@router.get("/parity", response_model=ParityResult | list[ParityResult], responses=error_responses(404, 422, 503),
            summary="Keras vs scratch on the test split (cached)")
async def parity(
    parity: ParityDep,
    arch: Annotated[Literal["cnn", "rnn", "lstm"] | None,
                    Query(description="One arch; omitted: all three (a list).",
                          openapi_examples={"rnn": {"summary": "the SimpleRNN", "value": "rnn"},
                                            "cnn": {"summary": "the CNN", "value": "cnn"}})] = None,
    limit: Annotated[int | None, Query(ge=1, description="Compare the first N test items; omitted: the whole split.",
                                       openapi_examples={"first 100": {"summary": "the first 100 test items",
                                                                       "value": 100}})] = None,
) -> ParityResult | list[ParityResult]:
    if arch is not None:
        return ParityResult(**await parity.run(arch, limit))
    results = await asyncio.gather(*(parity.run(a, limit) for a in ARCHS))
    return [ParityResult(**r) for r in results]
