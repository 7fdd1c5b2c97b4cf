"""Runs the KServe SDK's REST client (``kserve.InferenceRESTClient``) against a server and prints what it got, as
JSON on stdout. Run by ``test_kserve.py`` with an interpreter that has ``kserve`` installed (KSERVE_PYTHON): the
SDK pins protobuf < 7 and psutil < 6, older than what TensorFlow's venv holds, so it lives in its own venv.

    $KSERVE_PYTHON tests/protocols/kserve_client.py http://127.0.0.1:8000 images.npy
"""
from __future__ import annotations

import asyncio
import json
import sys

import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

TEXTS = ["Makanannya enak dan pelayanannya ramah sekali.", "Saya kecewa, pesanan datang terlambat."]


async def main(base_url: str, images_path: str) -> dict:
    images = np.load(images_path).astype(np.float32)
    out: dict = {}
    v2 = InferenceRESTClient(RESTConfig(protocol="v2", timeout=60))
    out["live"] = await v2.is_server_live(base_url)
    out["ready"] = await v2.is_server_ready(base_url)
    out["model_ready"] = await v2.is_model_ready(base_url, "cnn")
    out["unknown_model_ready"] = await v2.is_model_ready(base_url, "nope")
    for binary in (False, True):
        inp = InferInput("images", list(images.shape), "FP32")
        inp.set_data_from_numpy(images, binary_data=binary)
        res = await v2.infer(base_url, InferRequest("cnn", [inp], request_id="ks-1", parameters={"backend": "keras"}),
                             model_name="cnn")
        out[f"cnn_{'binary' if binary else 'json'}"] = {
            "id": res.id, "model_name": res.model_name,
            "probabilities": res.outputs[0].as_numpy().tolist() if res.outputs[0].name == "probabilities"
            else res.outputs[1].as_numpy().tolist(),
            "labels": [v.decode() if isinstance(v, bytes) else v
                       for o in res.outputs if o.name == "labels" for v in o.as_numpy().reshape(-1)]}
    texts = InferInput("texts", [len(TEXTS)], "BYTES")
    texts.set_data_from_numpy(np.array([t.encode() for t in TEXTS], dtype=np.object_), binary_data=False)
    res = await v2.infer(base_url, InferRequest("rnn", [texts]), model_name="rnn")
    out["rnn"] = next(o.as_numpy().tolist() for o in res.outputs if o.name == "probabilities")
    try:
        await v2.infer(base_url, InferRequest("nope", [texts]), model_name="nope")
    except Exception as exc:  # the SDK's HTTPStatusError carrying our {"error": ...}
        out["unknown_model_error"] = {"type": type(exc).__name__, "text": str(exc)}
    await v2.close()
    v1 = InferenceRESTClient(RESTConfig(protocol="v1", timeout=60))  # KServe's v1 is TF Serving's :predict
    out["v1_rnn"] = await v1.infer(base_url, {"instances": TEXTS}, model_name="rnn")
    await v1.close()
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2]))))
