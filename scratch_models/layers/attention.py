"""MultiHeadAttention (Keras 3), inference: scaled dot-product attention over ``num_heads`` heads.

Shapes: query (B, T, Dq), value (B, S, Dv), key (B, S, Dk) (the value when absent). Per head n:
``q = query @ Wq[:, n] + bq[n]`` (key_dim), ``k`` likewise, ``v`` (value_dim); ``p = softmax(q kᵀ /
sqrt(key_dim))`` over S with masked positions excluded; ``out = Σ_n (p v) @ Wo[n] + bo``.

The mask is the AND of ``attention_mask`` (B, T, S), the query's Keras mask (B, T, 1), the value's
and key's (B, 1, S) and the causal one. Keras computes the softmax two ways and so do we: without
dropout, through ``ops.dot_product_attention`` (masked logits set to -0.7 * float32 max: a row with
every position masked becomes uniform); with dropout (a no-op at inference), through its Softmax
layer (masked logits -1e9, then masked probabilities zeroed: such a row becomes zeros).
"""
from __future__ import annotations

import numpy as np

from .base import Layer, check_positive_int

#: TensorFlow's dot_product_attention fill value for masked logits (float32).
DOT_PRODUCT_MASK_VALUE = -0.7 * 3.38953e38
#: Keras' Softmax layer fill value for masked logits.
SOFTMAX_MASK_VALUE = -1e9


class MultiHeadAttention(Layer):
    """Weights (Keras' order and names): ``query/kernel`` (Dq, N, key_dim), ``query/bias`` (N, key_dim),
    ``key/kernel`` (Dk, N, key_dim), ``key/bias``, ``value/kernel`` (Dv, N, value_dim), ``value/bias``,
    ``attention_output/kernel`` (N, value_dim, *output_shape), ``attention_output/bias`` (*output_shape,);
    no biases when ``use_bias=False``. ``output_shape`` defaults to (Dq,)."""

    supports_masking = True
    options = {"num_heads": None, "key_dim": None, "value_dim": None, "dropout": None, "use_bias": None,
               "output_shape": None, "attention_axes": (None, (1,), [1], -2, [-2], (-2,)),
               "use_gate": (False, None), "sliding_window": (None,), "flash_attention": (None, False)}
    #: Call arguments a functional graph may pass (positional after the query: value, key).
    call_args = ("value", "key", "attention_mask", "use_causal_mask")
    masks_each_argument = True  # ``mask`` is the query's Keras mask; value_mask/key_mask the others'

    def __init__(self, num_heads: int, key_dim: int, value_dim: int | None = None, dropout: float = 0.0,
                 use_bias: bool = True, output_shape=None, name: str | None = None, **_ignored):
        super().__init__(name)
        self.num_heads = check_positive_int(num_heads, "num_heads")
        self.key_dim = check_positive_int(key_dim, "key_dim")
        self.value_dim = self.key_dim if value_dim is None else check_positive_int(value_dim, "value_dim")
        self.dropout = float(dropout)
        self.use_bias = bool(use_bias)
        if output_shape is not None:
            output_shape = (output_shape,) if isinstance(output_shape, (int, np.integer)) else tuple(output_shape)
            output_shape = tuple(check_positive_int(d, "output_shape") for d in output_shape)
        self.output_shape_arg = output_shape

    def get_config(self) -> dict:
        return {"name": self.name, "num_heads": self.num_heads, "key_dim": self.key_dim, "value_dim": self.value_dim,
                "dropout": self.dropout, "use_bias": self.use_bias,
                "output_shape": None if self.output_shape_arg is None else list(self.output_shape_arg)}

    def build(self, input_shape, value_shape=None, key_shape=None):
        """input_shape: the query's (B, T, Dq); value/key shapes (B, S, D) (default: the query's)."""
        value_shape = input_shape if value_shape is None else value_shape
        key_shape = value_shape if key_shape is None else key_shape
        for what, shape in (("query", input_shape), ("value", value_shape), ("key", key_shape)):
            if len(shape) != 3:
                raise ValueError(f"MultiHeadAttention {self.name!r} expected a {what} of shape (B, T, D), "
                                 f"received {shape}")
        n, kd, vd = self.num_heads, self.key_dim, self.value_dim
        out = self.output_shape_arg or (input_shape[-1],)
        shapes = {"query/kernel": (input_shape[-1], n, kd), "query/bias": (n, kd),
                  "key/kernel": (key_shape[-1], n, kd), "key/bias": (n, kd),
                  "value/kernel": (value_shape[-1], n, vd), "value/bias": (n, vd),
                  "attention_output/kernel": (n, vd, *out), "attention_output/bias": out}
        if not self.use_bias:
            shapes = {k: v for k, v in shapes.items() if not k.endswith("bias")}
        self.input_shape = input_shape
        self.weights = {k: np.zeros(s, self.dtype) for k, s in shapes.items()}
        self.output_shape = (input_shape[0], input_shape[1], *out)
        self.built = True
        return self.output_shape

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], *(self.output_shape_arg or (input_shape[-1],)))

    def _project(self, x, key):
        y = np.einsum("btd,dnh->btnh", x, self.weights[f"{key}/kernel"])
        return y + self.weights[f"{key}/bias"] if self.use_bias else y

    def attention_mask(self, t: int, s: int, mask=None, value_mask=None, key_mask=None, attention_mask=None,
                       use_causal_mask: bool = False):
        """The (B|1, T, S) boolean mask of allowed (query, key) pairs, or None (all allowed)."""
        parts = []
        if mask is not None:
            parts.append(np.asarray(mask, bool)[:, :, None])
        for m in (value_mask, key_mask):
            if m is not None:
                parts.append(np.asarray(m, bool)[:, None, :])
        if use_causal_mask:
            parts.append(np.tril(np.ones((t, s), bool))[None])  # query i sees keys 0..i (Keras' cumsum form)
        if attention_mask is not None:
            parts.append(np.asarray(attention_mask) > (0.5 if np.asarray(attention_mask).dtype.kind == "f" else 0))
        if not parts:
            return None
        out = parts[0]
        for p in parts[1:]:
            out = out & p
        return out

    def forward(self, x, mask=None, training=False, value=None, key=None, attention_mask=None,
                use_causal_mask: bool = False, value_mask=None, key_mask=None):
        """x: the query (B, T, Dq); value (B, S, Dv) (default: the query: self-attention); key (B, S, Dk)
        (default: the value) -> (B, T, *output_shape). ``mask``/``value_mask``/``key_mask``: the Keras
        masks (B, T)/(B, S) of query, value and key; ``attention_mask`` (B, T, S)."""
        if training:
            raise NotImplementedError("MultiHeadAttention.backward is not implemented (inference only)")
        query = np.asarray(x, self.dtype)
        value = query if value is None else np.asarray(value, self.dtype)
        key = value if key is None else np.asarray(key, self.dtype)
        allowed = self.attention_mask(query.shape[1], value.shape[1], mask, value_mask, key_mask, attention_mask,
                                      use_causal_mask)
        q, k, v = self._project(query, "query"), self._project(key, "key"), self._project(value, "value")
        scale = self.dtype.type(1 / np.sqrt(self.key_dim))
        if self.dropout > 0:  # Keras' explicit path: scaled query, Softmax layer
            logits = np.einsum("bsnh,btnh->bnts", k, q * scale)
            fill = SOFTMAX_MASK_VALUE
        else:  # ops.dot_product_attention: scaled logits
            logits = np.einsum("btnh,bsnh->bnts", q, k) * scale
            fill = DOT_PRODUCT_MASK_VALUE
        if allowed is not None:
            allowed = allowed[:, None]  # (B, 1, T, S): the same for every head
            logits = np.where(allowed, logits, self.dtype.type(fill))
        e = np.exp(logits - logits.max(axis=-1, keepdims=True))
        probs = e / e.sum(axis=-1, keepdims=True)
        if allowed is not None and self.dropout > 0:
            probs = np.where(allowed, probs, self.dtype.type(0))
        context = np.einsum("bnts,bsnh->btnh", probs, v)
        kernel = self.weights["attention_output/kernel"]
        out = np.einsum("btnh,nho->bto", context, kernel.reshape(*kernel.shape[:2], -1))
        out = out.reshape(*out.shape[:2], *kernel.shape[2:])
        if self.use_bias:
            out += self.weights["attention_output/bias"]
        return out.astype(self.dtype, copy=False)
