"""Everything that exists for inference speed, apart from the layers (which keep only the textbook):

* ``plan``: the graph rewrite into fused steps, compiled once per model (``compile_plan``), run by ``Model.predict``;
* ``conv``: Conv2D with BatchNormalization folded in, ReLU and 2x2 max pooling, Winograd F(2x2, 3x3) or im2col;
* ``pooling``: pooling, Dense(+activation) and standalone BatchNormalization steps;
* ``recurrent``: packed SimpleRNN/LSTM loops and the stacked Bidirectional loop;
* ``split``: the one batch-split policy (``Part`` is passed to every step);
* ``memory``: the arenas that hold every step's buffers across calls.
"""
from .plan import Plan, compile_plan

__all__ = ["Plan", "compile_plan"]
