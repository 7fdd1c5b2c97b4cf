"""The fused Bidirectional inference (both directions in one time loop, ``inference.recurrent.BidirectionalStep``).

Checked against Keras on post-, pre- and no padding, all-padding rows, length-1 and full-length rows,
every merge mode, with and without sequences; against the two-layer loops it replaces (float64, so
any indexing slip shows far above rounding); on the committed rnn/lstm models; and it must be the
path taken exactly when it applies (other masks and unstackable layer pairs fall back).
"""
from __future__ import annotations

import numpy as np
import pytest

import scratch_models
from engine_helpers import LAYER_TOL, REPO, compare, keras, keras_out, padded_ids, randomize_weights
from scratch_models.inference import recurrent
from scratch_models.layers import bidirectional

T, VOCAB = 11, 40


def ids_with_lengths(lengths, t: int = T, pre: bool = False, seed: int = 0) -> np.ndarray:
    """Token ids in [1, VOCAB) with ``lengths[i]`` real tokens in row i, zeros after (or before)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, VOCAB, size=(len(lengths), t))
    pos = np.arange(t)[None, :]
    lengths = np.asarray(lengths)[:, None]
    ids[(pos < t - lengths) if pre else (pos >= lengths)] = 0
    return ids.astype(np.int32)


INPUTS = {
    "post": lambda: padded_ids(np.random.default_rng(1), 37, T, VOCAB, "right"),
    "pre": lambda: padded_ids(np.random.default_rng(2), 37, T, VOCAB, "left"),
    "none": lambda: padded_ids(np.random.default_rng(3), 9, T, VOCAB, "none"),
    "all-padding row": lambda: padded_ids(np.random.default_rng(4), 13, T, VOCAB, "full"),
    "lengths 1 and T": lambda: ids_with_lengths([1, T, 1, 5, T, 2, 1]),
    "lengths 1 and T, pre": lambda: ids_with_lengths([1, T, 1, 5, T, 2, 1], pre=True),
    "one row": lambda: ids_with_lengths([4]),
}


def bidirectional_model(cell: str, units: int = 6, merge_mode: str = "concat", return_sequences: bool = True,
                        seed: int = 0, backward_layer=None, scale: float = 0.5, **cell_options):
    L = keras.layers
    layer = L.Bidirectional(getattr(L, cell)(units, return_sequences=return_sequences, **cell_options),
                            merge_mode=merge_mode, backward_layer=backward_layer)
    model = keras.Sequential([keras.Input((T,), dtype="int32"), L.Embedding(VOCAB, 5, mask_zero=True), layer])
    randomize_weights(model, seed=seed, scale=scale)
    return model


@pytest.fixture
def fused_calls(monkeypatch):
    """How many times the fused loop ran (it is still run, just counted: its schedule is made only there)."""
    calls = []

    class Counted(recurrent._Schedule):
        def __init__(self, mask):
            calls.append(mask.shape)
            super().__init__(mask)

    monkeypatch.setattr(recurrent, "_Schedule", Counted)
    return calls


@pytest.mark.parametrize("inputs", list(INPUTS))
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("cell", ["SimpleRNN", "LSTM"])
def test_fused_matches_keras(cell, return_sequences, inputs, fused_calls):
    model = bidirectional_model(cell, return_sequences=return_sequences, seed=len(inputs))
    compare(model, INPUTS[inputs](), LAYER_TOL)
    assert fused_calls, "the fused loop was not taken"


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "ave", "mul"])
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("cell", ["SimpleRNN", "LSTM"])
def test_fused_merge_modes_match_keras(cell, merge_mode, return_sequences, fused_calls):
    model = bidirectional_model(cell, merge_mode=merge_mode, return_sequences=return_sequences, seed=5)
    compare(model, INPUTS["post"](), LAYER_TOL)
    assert fused_calls


@pytest.mark.parametrize("cell", ["SimpleRNN", "LSTM"])
def test_fused_without_mask_matches_keras(cell, fused_calls):
    """No Embedding: float input, no mask, every row runs all T steps."""
    L = keras.layers
    model = keras.Sequential([keras.Input((T, 4)), L.Bidirectional(getattr(L, cell)(5, return_sequences=True))])
    randomize_weights(model, seed=8, scale=0.5)
    compare(model, np.random.default_rng(0).standard_normal((6, T, 4)).astype(np.float32), LAYER_TOL)
    assert fused_calls


@pytest.mark.parametrize("cell", ["SimpleRNN", "LSTM"])
def test_fused_options_match_keras(cell, fused_calls):
    """No bias, another SimpleRNN activation, larger units: still fused, still Keras' numbers (small
    weights: a ReLU recurrence grows fast, and the tolerance is absolute)."""
    options = {"use_bias": False} if cell == "LSTM" else {"activation": "relu", "use_bias": False}
    model = bidirectional_model(cell, units=33, seed=9, scale=0.15, **options)
    compare(model, INPUTS["post"](), LAYER_TOL)
    assert fused_calls


@pytest.mark.parametrize("pattern", ["middle", "mixed"])
@pytest.mark.parametrize("cell", ["SimpleRNN", "LSTM"])
def test_other_masks_fall_back_and_match_keras(cell, pattern, fused_calls):
    """Masks with holes, or post- and pre-padding mixed, run the two layers one by one."""
    if pattern == "middle":
        ids = padded_ids(np.random.default_rng(6), 21, T, VOCAB, "middle")
    else:
        ids = np.concatenate([ids_with_lengths([3, 7, 2]), ids_with_lengths([4, 6], pre=True, seed=1)])
    compare(bidirectional_model(cell, seed=11), ids, LAYER_TOL)
    assert not fused_calls


def test_unstackable_pairs_fall_back_and_match_keras(fused_calls):
    """A backward layer with other activations, or an LSTM whose gates are not sigmoid/tanh."""
    L = keras.layers
    backward = L.LSTM(6, return_sequences=True, go_backwards=True, activation="relu")
    compare(bidirectional_model("LSTM", seed=12, backward_layer=backward), INPUTS["post"](), LAYER_TOL)
    compare(bidirectional_model("LSTM", seed=13, recurrent_activation="hard_sigmoid"), INPUTS["post"](), LAYER_TOL)
    assert not fused_calls


@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("cell", ["SimpleRNN", "LSTM"])
def test_fused_equals_two_loops_in_float64(cell, return_sequences, monkeypatch):
    """In float64 the fused loop (predict's plan) and the two layers' loops (``model(x)``, the plain graph
    walk) agree to ~1e-12: same arithmetic, same rows."""
    model = scratch_models.from_keras(bidirectional_model(cell, units=7, return_sequences=return_sequences, seed=14))
    model.astype("float64")
    for name, make in INPUTS.items():
        ids = make()
        fused = model.predict(ids)
        loops = model(model.check_input(ids))
        assert fused.dtype == np.float64 and fused.shape == loops.shape, name
        np.testing.assert_allclose(fused, loops, rtol=1e-12, atol=1e-12, err_msg=name)


def test_training_does_not_take_the_fused_loop(fused_calls):
    model = scratch_models.from_keras(bidirectional_model("LSTM", seed=15))
    model(INPUTS["post"](), training=True)
    assert not fused_calls


@pytest.mark.parametrize("arch", ["rnn", "lstm"])
def test_committed_models_match_keras(arch, fused_calls, monkeypatch):
    """The served models on real-length texts (NusaX test split) or, without the data, random ids."""
    folder = REPO / "weights" / arch
    if not (folder / "model.keras").is_file():
        pytest.skip(f"{folder} is absent")
    model = scratch_models.load(folder)
    kmodel = keras.saving.load_model(folder / "model.keras", compile=False)
    x = _texts(model, 96)
    probs = model.predict(x)
    assert fused_calls
    ref = keras_out(kmodel, x)
    np.testing.assert_allclose(probs, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model(model.check_input(x)), probs, rtol=1e-5, atol=1e-6)  # the layers' own loops
    # The Bidirectional layer's own output (before pooling), against Keras' sub-model.
    bi_name = next(name for name, layer in model.layers.items() if type(layer).__name__ == "Bidirectional")
    ours = _layer_output(model, bi_name, x)
    sub = keras.Model(kmodel.inputs, kmodel.get_layer(bi_name).output)
    np.testing.assert_allclose(ours, keras_out(sub, x), rtol=1e-5, atol=1e-5)


def _texts(model, n: int) -> np.ndarray:
    from engine_helpers import DATA_DIR
    if (DATA_DIR / "nusax-sentiment" / "indonesian" / "test.csv").is_file():
        from scratch_models.datasets import load_nusax
        return np.asarray(model.vectorizer.transform(load_nusax(DATA_DIR).test.x[:n]))
    t = model.input_shape[1]
    return ids_with_lengths(np.random.default_rng(0).integers(1, t + 1, n), t=t)


def _layer_output(model, name: str, x) -> np.ndarray:
    """Run ``model`` node by node (inference) and return ``name``'s output."""
    values, masks = {(model.inputs[0].name, 0, 0): model.check_input(x)}, {(model.inputs[0].name, 0, 0): None}
    for node in model.nodes:
        layer = model.layers[node.layer]
        arg = values[tuple(node.args[0])]
        carried = masks[tuple(node.args[0])]
        values[node.output] = layer.forward(arg, mask=carried, training=False)
        masks[node.output] = layer.compute_mask(arg, carried)
        if node.layer == name:
            return values[node.output]
    raise KeyError(name)


@pytest.mark.parametrize("return_sequences", [True, False])
def test_fused_empty_batch(return_sequences, fused_calls):
    model = scratch_models.from_keras(bidirectional_model("LSTM", return_sequences=return_sequences, seed=16))
    out = model.predict(np.zeros((0, T), np.int32))
    assert out.shape == ((0, T, 12) if return_sequences else (0, 12)) and out.dtype == np.float32
    assert fused_calls


def test_fused_checks_the_mask_shape():
    model = scratch_models.from_keras(bidirectional_model("SimpleRNN", seed=17))
    layer = next(l for l in model.layers.values() if isinstance(l, bidirectional.Bidirectional))
    with pytest.raises(ValueError, match=r"expected a mask of shape \(2, 11\)"):
        recurrent.BidirectionalStep(layer)(np.zeros((2, T, 5), np.float32), mask=np.ones((2, T - 1), bool))


# ------------------------------------------------------------ Embedding -> Bidirectional -> GlobalAveragePooling1D folded
def _text_model(cell: str, mask_zero: bool = True, pooling_keepdims: bool = False, merge_mode: str = "concat",
                between: bool = True, seed: int = 5):
    """Embedding [-> SpatialDropout1D] -> Bidirectional(cell, sequences) -> GlobalAveragePooling1D -> Dense."""
    L = keras.layers
    layers = [keras.Input((T,), dtype="int32"), L.Embedding(VOCAB, 6, mask_zero=mask_zero)]
    if between:
        layers.append(L.SpatialDropout1D(0.3))
    layers += [L.Bidirectional(getattr(L, cell)(5, return_sequences=True), merge_mode=merge_mode),
               L.GlobalAveragePooling1D(keepdims=pooling_keepdims)]
    if pooling_keepdims:
        layers.append(L.Flatten())
    layers.append(L.Dense(3, activation="softmax"))
    kmodel = keras.Sequential(layers)
    randomize_weights(kmodel, seed)
    return kmodel


@pytest.mark.parametrize("cell", ["SimpleRNN", "LSTM"])
@pytest.mark.parametrize("inputs", ["post", "pre", "none", "lengths 1 and T", "one row"])
@pytest.mark.parametrize("mask_zero", [True, False])
def test_embedding_and_average_folded_into_the_fused_loop_match_keras(cell, inputs, mask_zero):
    """The whole chain is one step (the Embedding as a projection table, the average from the kept states)
    and gives Keras' answer."""
    kmodel = _text_model(cell, mask_zero)
    model = scratch_models.from_keras(kmodel)
    steps = model.plan().steps
    folded = steps[0]
    assert folded.fn.table is not None and folded.fn.average and len(folded.covers) == 4, model.plan().describe()
    x = INPUTS[inputs]()
    compare(kmodel, x)
    assert np.abs(model.predict(x) - model(x)).max() <= LAYER_TOL


@pytest.mark.parametrize("cell", ["SimpleRNN", "LSTM"])
def test_folded_chain_all_padding_rows_and_interior_gaps_follow_the_layers(cell):
    """A row with no token averages over no steps (0 / 0, as the pooling layer computes it); a mask with a
    gap inside a row takes the layers' own loops; both give the plain graph walk's answer."""
    import warnings
    model = scratch_models.from_keras(_text_model(cell))
    gaps = ids_with_lengths([T, 7, 3, T])
    gaps[0, 4] = 0  # a gap inside row 0
    for x in (padded_ids(np.random.default_rng(4), 13, T, VOCAB, "full"), gaps):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # 0 / 0 of the all-padding row
            got, want = model.predict(x), model(x)
        assert np.array_equal(np.isnan(got), np.isnan(want))
        assert np.nanmax(np.abs(got - want)) <= LAYER_TOL
    with pytest.raises(ValueError, match=r"expected token ids in \[0, 39\]"):
        model.predict(np.full((2, T), VOCAB, np.int32))


@pytest.mark.parametrize("variant", ["keepdims", "merge sum", "no layer between"])
def test_the_fold_applies_exactly_when_it_is_the_same_computation(variant):
    """keepdims pooling and a summed merge are not folded (the step ends at the Bidirectional); with nothing
    between the Embedding and the Bidirectional the Embedding is still folded. Keras' answer either way."""
    kmodel = _text_model("LSTM", pooling_keepdims=variant == "keepdims",
                         merge_mode="sum" if variant == "merge sum" else "concat", between=variant != "no layer between")
    model = scratch_models.from_keras(kmodel)
    step = next(s for s in model.plan().steps if s.name == "bidirectional")
    assert (step.fn.table is not None) == (variant == "no layer between") == step.fn.average
    compare(kmodel, INPUTS["post"]())
