"""Test helpers for the ONNX tests: export to a temp file, run onnxruntime, compare at a scale."""

from __future__ import annotations

import numpy as np

import convscope as cs


def ort_session(path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def run_ort(path, x: np.ndarray) -> np.ndarray:
    sess = ort_session(path)
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def ours(model, x: np.ndarray) -> np.ndarray:
    with cs.no_grad(), model.evaluating():
        out = model(cs.tensor(x))
    return (out[0] if isinstance(out, tuple) else out).data


def assert_close_scaled(got, ref, rel: float = 2e-5, what: str = ""):
    """|got - ref| <= rel * max(1, max |ref|): float32 summation-order differences of two
    implementations grow with the size of the values (deep random networks reach 1e9)."""
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != {ref.shape}"
    scale = max(1.0, float(np.abs(ref).max()))
    err = float(np.abs(got - ref).max())
    assert err <= rel * scale, f"{what}: max error {err:.3g} at scale {scale:.3g}"
