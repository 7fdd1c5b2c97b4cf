"""The op nodes Keras 3 saves in a functional graph for ``keras.ops`` calls (e.g. ``NotEqual(x, 0)``
passed as ``mask=`` into a recurrent layer). Each takes its positional arguments, tensors or constants."""
from __future__ import annotations

import numpy as np

OPS = {
    "NotEqual": np.not_equal, "Equal": np.equal, "Greater": np.greater, "GreaterEqual": np.greater_equal,
    "Less": np.less, "LessEqual": np.less_equal, "LogicalAnd": np.logical_and, "LogicalOr": np.logical_or,
    "LogicalNot": np.logical_not, "Add": np.add, "Subtract": np.subtract, "Multiply": np.multiply,
    "Divide": np.divide, "TrueDivide": np.divide,
}


class Op:
    """A stateless graph node applying a NumPy function to its arguments (no weights, no mask)."""

    supports_masking = False
    weights: dict = {}

    def __init__(self, class_name: str, name: str):
        if class_name not in OPS:
            from .errors import UnsupportedLayerError
            raise UnsupportedLayerError(name, class_name, f"op {class_name} (supported ops: {sorted(OPS)})")
        self.class_name, self.name = class_name, name
        self.fn = OPS[class_name]

    def forward(self, args, mask=None, training=False):
        return self.fn(*args)

    def get_config(self) -> dict:
        return {"name": self.name}

    def get_weights(self):
        return []

    def count_params(self) -> int:
        return 0
