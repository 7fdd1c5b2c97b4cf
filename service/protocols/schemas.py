"""Pydantic models of the Open Inference Protocol v2 (KServe ``required_api.md``) and of TF Serving's REST API
(``g3doc/api_rest.md``): request validation and the OpenAPI schema of both protocols' routes."""
from __future__ import annotations

import copy
from typing import Any, Literal

from fastapi.exceptions import RequestValidationError
from pydantic import (BaseModel, ConfigDict, Field, NonNegativeInt, StrictBool, StrictFloat, StrictInt, StrictStr,
                      ValidationError)

from ..errors import validation_error

Parameter = StrictStr | StrictBool | StrictInt | StrictFloat
Parameters = dict[str, Parameter]


class ProtocolError(BaseModel):
    """Both protocols' error body."""
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"error": "inputs[0] (images): shape [1, 32, 32, 3] holds 3072 elements, data holds 3000 (nested as [3000])"}]})
    error: str = Field(description="What was wrong, naming the tensor, field or item.")


# ------------------------------------------------------------------ Open Inference Protocol v2
class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class MetadataTensor(BaseModel):
    name: str
    datatype: str
    shape: list[int] = Field(description="-1 for the batch dimension.")


class ModelMetadata(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "name": "cnn", "versions": ["1"], "platform": "keras",
        "inputs": [{"name": "images", "datatype": "FP32", "shape": [-1, 32, 32, 3]}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
                    {"name": "labels", "datatype": "BYTES", "shape": [-1]}]}]})
    name: str
    versions: list[str]
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]


class RequestInput(BaseModel):
    name: StrictStr
    shape: list[NonNegativeInt]
    datatype: StrictStr
    parameters: Parameters | None = Field(None, description="`binary_data_size`: the tensor is that many bytes "
                                                            "of binary data after the JSON.")
    data: Any = Field(None, description="Row-major; nested exactly as `shape`, or flat. Absent for binary data.")


class RequestOutput(BaseModel):
    name: StrictStr
    parameters: Parameters | None = Field(None, description="`binary_data`: return this output as binary data.")


class InferenceRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "42", "parameters": {"backend": "keras"},
        "inputs": [{"name": "texts", "shape": [2], "datatype": "BYTES",
                    "data": ["Makanannya enak sekali.", "Pesanan datang terlambat."]}],
        "outputs": [{"name": "labels"}]}]})
    id: StrictStr | None = None
    parameters: Parameters | None = Field(None, description="`backend`: scratch or keras (default "
                                                            "DEFAULT_BACKEND); `binary_data_output`: every output "
                                                            "as binary data unless it says otherwise.")
    inputs: list[RequestInput] = Field(min_length=1, max_length=1, description="One input tensor: `images`, "
                                                                               "`texts` or `token_ids`.")
    outputs: list[RequestOutput] | None = Field(None, description="`probabilities` and/or `labels`; absent: both.")


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters | None = None
    data: list | None = Field(None, description="Flat row-major; absent when the output is binary data.")


class InferenceResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "model_name": "rnn", "model_version": "1", "id": "42",
        "parameters": {"backend": "scratch", "model_sha256": "3f1c...e9", "batch_size": 2, "batch_requests": 1},
        "outputs": [{"name": "probabilities", "shape": [1, 3], "datatype": "FP32", "data": [0.1, 0.2, 0.7]},
                    {"name": "labels", "shape": [1], "datatype": "BYTES", "data": ["positive"]}]}]})
    model_name: str
    model_version: str
    id: str
    parameters: Parameters
    outputs: list[ResponseOutput]


# ------------------------------------------------------------------ TF Serving REST
class TFStatus(BaseModel):
    error_code: str
    error_message: str


class TFModelVersionStatus(BaseModel):
    version: str
    state: Literal["START", "LOADING", "AVAILABLE", "UNLOADING", "END"]
    status: TFStatus


class TFModelStatus(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}]})
    model_version_status: list[TFModelVersionStatus]


class TFDim(BaseModel):
    size: str
    name: str = ""


class TFTensorShape(BaseModel):
    dim: list[TFDim]
    unknown_rank: bool = False


class TFTensorInfo(BaseModel):
    dtype: str
    tensor_shape: TFTensorShape
    name: str


class TFSignatureDef(BaseModel):
    inputs: dict[str, TFTensorInfo]
    outputs: dict[str, TFTensorInfo]
    method_name: str


class TFSignatureDefs(BaseModel):
    signature_def: dict[str, TFSignatureDef]


class TFMetadataBody(BaseModel):
    signature_def: TFSignatureDefs


class TFModelSpec(BaseModel):
    name: str
    signature_name: str
    version: str


class TFModelMetadata(BaseModel):
    model_spec: TFModelSpec
    metadata: TFMetadataBody


class TFPredictRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"instances": ["Makanannya enak sekali.", "Pesanan datang terlambat."]},
        {"signature_name": "serving_default", "inputs": {"texts": ["Tempatnya biasa saja."]}}]})
    signature_name: StrictStr | None = Field(None, description="Only `serving_default`.")
    instances: Any = Field(None, description="Row format: one item per instance (a 3-D nested list in [0, 1] or "
                                             "`{\"b64\": ...}` for images, a string or token ids for texts), or "
                                             "objects naming the input.")
    inputs: Any = Field(None, description="Columnar format: the batch tensor, or an object naming the input.")


class TFPredictResponse(BaseModel):
    predictions: list | None = Field(None, description="Row format: each instance's class probabilities.")
    outputs: list | None = Field(None, description="Columnar format: the probabilities tensor [N, C].")


def parse(model: type[BaseModel], value: dict) -> BaseModel:
    """``value`` as ``model``, or the service's 4xx naming the first bad field (``inputs[0].shape``)."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise validation_error(RequestValidationError(exc.errors())) from None


def inline_schema(model: type[BaseModel]) -> dict:
    """``model``'s JSON schema with every ``$ref`` replaced by its definition (an operation's request body in
    ``openapi_extra`` cannot point into the component schemas FastAPI builds)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node):
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]]))
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)
