"""The standard inference protocols' wire formats, shared by ``routes/v2.py`` (Open Inference Protocol v2, with
Triton's binary tensor data extension) and ``routes/tfserving.py`` (TF Serving REST).

* :mod:`.datatypes` -- one codec per v2 datatype: JSON or binary data <-> NumPy, checked against the shape;
* :mod:`.binary` -- the binary tensor data extension: splitting a request body, assembling a response body;
* :mod:`.network` -- decoded tensors -> a backend's network input, through the service's own input checks;
* :mod:`.repository` -- the one adapter between these protocols and the model registry;
* :mod:`.schemas` -- the pydantic models of both protocols (their OpenAPI schema).
"""
