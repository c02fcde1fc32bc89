"""Edge cases of every function in convscope.nn.functional, against PyTorch (forward and gradients).

The case list covers empty batches (N = 0), zero-size channel and spatial dims, 0-d inputs,
unbatched inputs, every documented keyword and the argument forms PyTorch accepts (an int, a
1-tuple or a 2-tuple, lists, None). An empty input has an empty gradient. Where PyTorch raises,
convscope raises a ValueError/TypeError naming the function (``ERROR_CASES``).

The parity cases run under every kernel backend (the ``backend`` fixture of conftest.py):
the argument checks and the empty-input paths run before any kernel, so all must agree.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import convscope as cs
import convscope.nn.functional as F
from parity import assert_gradcheck, assert_parity

I64 = np.int64


def rand(*shape, dtype=np.float32, seed=0):
    return np.random.default_rng(seed + len(shape) + sum(shape)).standard_normal(shape).astype(dtype)


def labels(*shape, classes=3, seed=0):
    return np.random.default_rng(seed).integers(0, classes, size=shape).astype(I64)


@dataclass
class Case:
    """Call ``F.<fn>`` and ``torch.nn.functional.<fn>`` on the same arrays and keywords.

    ``kwargs`` go to both; ``ours_kw`` / ``theirs_kw`` only to one side (dtype objects).
    ``arrays``: float arrays get gradients, integer arrays (targets) do not.
    """

    fn: str
    arrays: list
    kwargs: dict = field(default_factory=dict)
    ours_kw: dict = field(default_factory=dict)
    theirs_kw: dict = field(default_factory=dict)
    multilinear: bool = False
    grad: bool = True
    torch_fn: Any = None  # when torch's function is not TF.<fn> (flatten)
    torch_grad: bool = True  # False: torch's backward fails here; check ours by central differences

    def run(self):
        theirs_fn = self.torch_fn or getattr(TF, self.fn)
        ours_fn = getattr(F, self.fn)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's deprecation / broadcasting warnings
            assert_parity(
                lambda *a: ours_fn(*a, **self.kwargs, **self.ours_kw),
                lambda *a: theirs_fn(*a, **self.kwargs, **self.theirs_kw),
                self.arrays,
                grad=self.grad and self.torch_grad,
                multilinear=self.multilinear and self.torch_grad,
            )
        if self.grad and not self.torch_grad:
            assert_gradcheck(lambda *a: ours_fn(*a, **self.kwargs, **self.ours_kw), self.arrays)


def c(fn, *arrays, ml=False, torch_grad=True, **kwargs):
    return Case(fn, list(arrays), kwargs, multilinear=ml, torch_grad=torch_grad)


def conv_w(c_out, c_in, *k):
    return rand(c_out, c_in, *k, seed=1) * np.float32(0.3)


CASES = {
    # conv2d: empty batch / channels, unbatched, argument forms
    "conv2d-N0": c("conv2d", rand(0, 3, 5, 5), conv_w(4, 3, 3, 3), rand(4), ml=True),
    "conv2d-N0-groups-same": c(
        "conv2d", rand(0, 4, 5, 5), conv_w(4, 2, 3, 3), None, ml=True, padding="same", groups=2
    ),
    "conv2d-N0-float64": c(
        "conv2d", rand(0, 3, 5, 5, dtype=np.float64), conv_w(4, 3, 3, 3).astype(np.float64)
    ),
    "conv2d-N0-reflect": Case(  # padding_mode is beyond torch's functional: pad, then conv
        "conv2d",
        [rand(0, 3, 5, 5), conv_w(4, 3, 3, 3), rand(4)],
        ours_kw=dict(padding=1, padding_mode="reflect"),
        torch_fn=lambda x, w, b: TF.conv2d(TF.pad(x, (1, 1, 1, 1), mode="reflect"), w, b),
    ),
    "conv2d-unbatched": c("conv2d", rand(3, 5, 6), conv_w(4, 3, 3, 3), rand(4), ml=True, padding=1),
    "conv2d-1tuples": c(
        "conv2d",
        rand(2, 3, 7, 6),
        conv_w(4, 3, 3, 3),
        None,
        ml=True,
        stride=(2,),
        padding=(1,),
        dilation=(1,),
    ),
    "conv2d-lists": c(
        "conv2d",
        rand(2, 3, 7, 6),
        conv_w(4, 3, 3, 2),
        None,
        ml=True,
        stride=[2, 1],
        padding=[1, 0],
        dilation=[1, 2],
    ),
    "conv2d-valid": c("conv2d", rand(1, 3, 5, 5), conv_w(2, 3, 2, 2), None, ml=True, padding="valid"),
    "conv1d-N0": c("conv1d", rand(0, 3, 5), conv_w(4, 3, 3), rand(4), ml=True),
    "conv1d-unbatched": c("conv1d", rand(3, 7), conv_w(4, 3, 3), rand(4), ml=True, stride=2, padding=1),
    "conv1d-1tuples": c(
        "conv1d", rand(2, 3, 9), conv_w(4, 3, 3), None, ml=True, stride=(2,), padding=(1,), dilation=(2,)
    ),
    "conv1d-lists-same": c("conv1d", rand(2, 4, 9), conv_w(4, 2, 4), None, ml=True, padding="same", groups=2),
    "conv_transpose2d-N0": c("conv_transpose2d", rand(0, 3, 4, 4), conv_w(3, 4, 3, 3), rand(4), ml=True),
    "conv_transpose2d-N0-groups": c(
        "conv_transpose2d", rand(0, 4, 4, 4), conv_w(4, 1, 3, 3), rand(2), ml=True, groups=2, stride=2
    ),
    "conv_transpose2d-unbatched": c(
        "conv_transpose2d", rand(3, 4, 5), conv_w(3, 2, 3, 3), rand(2), ml=True, stride=2, padding=1
    ),
    "conv_transpose2d-1tuples": c(
        "conv_transpose2d",
        rand(2, 3, 4, 4),
        conv_w(3, 4, 3, 3),
        None,
        ml=True,
        stride=(2,),
        padding=(1,),
        output_padding=(1,),
        dilation=(1,),
    ),
    "conv_transpose2d-lists": c(
        "conv_transpose2d",
        rand(2, 3, 4, 4),
        conv_w(3, 4, 3, 2),
        None,
        ml=True,
        stride=[2, 3],
        padding=[1, 0],
        output_padding=[0, 2],
        dilation=[1, 1],
    ),
    # pooling
    "max_pool2d-N0": c("max_pool2d", rand(0, 3, 4, 4), ml=True, kernel_size=2),
    "max_pool2d-N0-ceil-indices": c(
        "max_pool2d", rand(0, 1, 5, 5), ml=True, kernel_size=2, ceil_mode=True, return_indices=True
    ),
    "max_pool2d-unbatched": c("max_pool2d", rand(3, 5, 6), ml=True, kernel_size=3, stride=2, padding=1),
    "max_pool2d-1tuples": c(
        "max_pool2d", rand(2, 3, 6, 7), ml=True, kernel_size=(3,), stride=(2,), padding=(1,), dilation=(1,)
    ),
    "max_pool2d-lists": c(
        "max_pool2d",
        rand(2, 3, 6, 7),
        ml=True,
        kernel_size=[3, 2],
        stride=[1, 2],
        padding=[1, 0],
        dilation=[2, 1],
    ),
    "max_pool2d-unbatched-indices": c(
        "max_pool2d", rand(2, 5, 6), ml=True, kernel_size=2, ceil_mode=True, return_indices=True
    ),
    "max_pool2d-stride-empty": c("max_pool2d", rand(2, 3, 6, 7), ml=True, kernel_size=2, stride=[]),
    "max_pool2d-stride-None-indices": c(
        "max_pool2d", rand(1, 2, 6, 7), ml=True, kernel_size=2, stride=None, return_indices=True
    ),
    "avg_pool2d-N0": c("avg_pool2d", rand(0, 3, 4, 4), ml=True, kernel_size=2),
    "avg_pool2d-N0-ceil-divisor": c(
        "avg_pool2d", rand(0, 2, 5, 5), ml=True, kernel_size=2, ceil_mode=True, divisor_override=3
    ),
    "avg_pool2d-unbatched": c("avg_pool2d", rand(3, 5, 6), ml=True, kernel_size=3, stride=2, padding=1),
    "avg_pool2d-1tuples": c(
        "avg_pool2d", rand(2, 3, 6, 7), ml=True, kernel_size=(3,), stride=(2,), padding=(1,)
    ),
    "avg_pool2d-lists-nopad": c(
        "avg_pool2d",
        rand(2, 3, 6, 7),
        ml=True,
        kernel_size=[3, 2],
        stride=[1, 2],
        padding=[1, 1],
        count_include_pad=False,
    ),
    "avg_pool2d-stride-empty": c("avg_pool2d", rand(2, 3, 6, 7), ml=True, kernel_size=2, stride=[]),
    "adaptive_avg_pool2d-N0": c("adaptive_avg_pool2d", rand(0, 3, 5, 4), ml=True, output_size=2),
    "adaptive_avg_pool2d-C0": c(
        "adaptive_avg_pool2d", rand(2, 0, 5, 4), ml=True, torch_grad=False, output_size=(2, 3)
    ),
    "adaptive_avg_pool2d-out0": c(
        "adaptive_avg_pool2d", rand(2, 3, 5, 4), ml=True, torch_grad=False, output_size=0
    ),
    "adaptive_avg_pool2d-out0x2": c(
        "adaptive_avg_pool2d", rand(2, 3, 5, 4), ml=True, torch_grad=False, output_size=(0, 2)
    ),
    "adaptive_avg_pool2d-None": c("adaptive_avg_pool2d", rand(2, 3, 5, 4), ml=True, output_size=(None, 3)),
    "adaptive_avg_pool2d-unbatched": c("adaptive_avg_pool2d", rand(3, 5, 4), ml=True, output_size=[3, 2]),
    "adaptive_max_pool2d-N0": c("adaptive_max_pool2d", rand(0, 3, 5, 4), ml=True, output_size=2),
    "adaptive_max_pool2d-out0": c(
        "adaptive_max_pool2d", rand(2, 3, 5, 4), ml=True, torch_grad=False, output_size=0
    ),
    "adaptive_max_pool2d-None-indices": c(
        "adaptive_max_pool2d", rand(2, 3, 5, 4), ml=True, output_size=(3, None), return_indices=True
    ),
    "adaptive_max_pool2d-unbatched-indices": c(
        "adaptive_max_pool2d", rand(3, 5, 4), ml=True, output_size=(2, 3), return_indices=True
    ),
    "adaptive_max_pool2d-unbatched": c("adaptive_max_pool2d", rand(3, 5, 4), ml=True, output_size=[3, 2]),
    # linear
    "linear-N0": c("linear", rand(0, 3), rand(4, 3), rand(4), ml=True),
    "linear-in0": c("linear", rand(2, 0), rand(4, 0), rand(4), ml=True),
    "linear-out0": c("linear", rand(2, 3), rand(0, 3), rand(0), ml=True),
    "linear-in0-float64": c("linear", rand(2, 0, dtype=np.float64), rand(4, 0, dtype=np.float64), None),
    "linear-1d-input": c("linear", rand(3), rand(4, 3), rand(4), ml=True),
    "linear-3d-input": c("linear", rand(2, 5, 3), rand(4, 3), None, ml=True),
    "linear-1d-weight": c("linear", rand(2, 3), rand(3), None, ml=True),
    "linear-1d-both": c("linear", rand(3), rand(3), rand(), ml=True),
    "flatten-0d": Case("flatten", [rand()], torch_fn=torch.flatten),
    "flatten-0d-dims": Case("flatten", [rand()], dict(start_dim=0, end_dim=-1), torch_fn=torch.flatten),
    "flatten-N0": Case("flatten", [rand(0, 3, 2)], dict(start_dim=1), torch_fn=torch.flatten),
    "flatten-mid": Case("flatten", [rand(2, 3, 2, 2)], dict(start_dim=1, end_dim=2), torch_fn=torch.flatten),
}

# elementwise activations: 0-d and empty inputs, keywords
for _fn, _kw in (
    ("relu", {}),
    ("relu", dict(inplace=False)),
    ("leaky_relu", {}),
    ("leaky_relu", dict(negative_slope=0.2, inplace=False)),
    ("leaky_relu", dict(negative_slope=-0.5)),
    ("sigmoid", {}),
    ("tanh", {}),
):
    _tag = "".join(f"-{k}={v}" for k, v in _kw.items())
    CASES[f"{_fn}{_tag}-0d"] = c(_fn, rand(), **_kw)
    CASES[f"{_fn}{_tag}-empty"] = c(_fn, rand(0, 3), **_kw)
    CASES[f"{_fn}{_tag}-C0"] = c(_fn, rand(2, 0, 4, 4), **_kw)

for _fn in ("softmax", "log_softmax"):
    CASES.update(
        {
            f"{_fn}-0d-dim0": c(_fn, rand(), dim=0),
            f"{_fn}-0d-dim-1": c(_fn, rand(), dim=-1),
            f"{_fn}-zero-size-dim": c(_fn, rand(5, 0, 0), dim=1),
            f"{_fn}-over-nonempty-dim-of-empty": c(_fn, rand(5, 0, 0), dim=0),
            f"{_fn}-N0": c(_fn, rand(0, 3), dim=1),
            f"{_fn}-empty-float64": c(_fn, rand(2, 0, dtype=np.float64), dim=1),
            f"{_fn}-neg-dim": c(_fn, rand(2, 3, 4), dim=-2),
            f"{_fn}-dim-None-4d": c(_fn, rand(2, 3, 2, 2)),
            f"{_fn}-dim-None-3d": c(_fn, rand(2, 3, 2)),
            f"{_fn}-dtype": Case(
                _fn, [rand(2, 3)], dict(dim=1), dict(dtype=cs.float64), dict(dtype=torch.float64)
            ),
            f"{_fn}-dtype-same": Case(
                _fn, [rand(2, 3)], dict(dim=1), dict(dtype=cs.float32), dict(dtype=torch.float32)
            ),
        }
    )


# batch_norm: arrays are (input, running_mean, running_var, weight, bias); statistics get no grad
def bn(x, c_stats, training, affine=True, **kw):
    mean = None if c_stats is None else np.abs(rand(c_stats, seed=3)).astype(x.dtype) * 0
    var = None if c_stats is None else (np.abs(rand(c_stats, seed=4)) + 0.5).astype(x.dtype)
    arrays = [x, None, None, None, None]
    if affine and c_stats is not None:  # True: weight and bias; "weight" / "bias": that one only
        if affine in (True, "weight"):
            arrays[3] = rand(c_stats, seed=5)
        if affine in (True, "bias"):
            arrays[4] = rand(c_stats, seed=6)

    def ours(x, w, b):
        return F.batch_norm(
            x,
            None if mean is None else cs.tensor(mean.copy()),
            None if var is None else cs.tensor(var.copy()),
            w,
            b,
            training=training,
            **kw,
        )

    def theirs(x, w, b):
        return TF.batch_norm(
            x,
            None if mean is None else torch.tensor(mean.copy()),
            None if var is None else torch.tensor(var.copy()),
            w,
            b,
            training=training,
            **kw,
        )

    return ours, theirs, [x, arrays[3], arrays[4]]


BN_CASES = {
    "1d-empty-eval": (rand(0), 0, False, False),
    "1d-empty-train": (rand(0), 0, True, False),
    "1d-empty-train-nostats": (rand(0), None, True, False),
    "N0-eval": (rand(0, 3), 3, False),
    "N0-train": (rand(0, 3), 3, True),
    "N0-train-4d": (rand(0, 3, 2, 2), 3, True),
    "C0-train": (rand(2, 0), 0, True, False),  # PyTorch fails on a (0,) weight here
    "1d-empty-eval-stats": (rand(0), 3, False, False),
    "H0-train": (rand(2, 3, 0, 2), 3, True),
    "H0-eval": (rand(2, 3, 0, 2), 3, False),
    "N1-spatial-train": (rand(1, 3, 2, 1), 3, True),
    "3d-train": (rand(2, 3, 4), 3, True),
    "5d-eval": (rand(2, 3, 2, 2, 2), 3, False),
    "5d-train": (rand(2, 3, 2, 2, 2), 3, True),
    "nostats-train": (rand(4, 3), None, True),
    "weight-only-train": (rand(4, 3), 3, True, "weight"),
    "bias-only-eval": (rand(4, 3, 2), 3, False, "bias"),
    "momentum-eps": (rand(4, 3, 2), 3, True, True, dict(momentum=0.3, eps=1e-3)),
}

# dropout: only the deterministic settings compare exactly
DROPOUT_CASES = {
    "0d-eval": c("dropout", rand(), p=0.5, training=False),
    "0d-p0": c("dropout", rand(), p=0.0),
    "0d-p1": c("dropout", rand(), p=1.0),
    "empty-p1": c("dropout", rand(0, 3), p=1.0),
    "empty-eval": c("dropout", rand(0, 3), p=0.3, training=False, inplace=False),
}
CASES.update({f"dropout-{k}": v for k, v in DROPOUT_CASES.items()})

# interpolate
for _mode in ("nearest", "bilinear"):
    CASES.update(
        {
            f"interpolate-{_mode}-N0": c("interpolate", rand(0, 2, 4, 4), scale_factor=2, mode=_mode),
            f"interpolate-{_mode}-N0-size": c("interpolate", rand(0, 2, 4, 4), size=3, mode=_mode),
            f"interpolate-{_mode}-size-list": c("interpolate", rand(2, 2, 4, 5), size=[3, 7], mode=_mode),
            f"interpolate-{_mode}-sf-list": c(
                "interpolate", rand(2, 2, 4, 5), scale_factor=[1.5, 2.0], mode=_mode
            ),
            f"interpolate-{_mode}-antialias-False": c(
                "interpolate", rand(1, 2, 4, 5), size=(6, 3), mode=_mode, antialias=False
            ),
        }
    )
    for _rsf in (None, False, True):
        for _sf in (1.7, (1.3, 2.6), 0.6):
            CASES[f"interpolate-{_mode}-sf{_sf}-recompute{_rsf}"] = c(
                "interpolate", rand(2, 2, 5, 7), scale_factor=_sf, mode=_mode, recompute_scale_factor=_rsf
            )
CASES.update(
    {
        "interpolate-bilinear-align-recompute": c(
            "interpolate",
            rand(1, 2, 5, 7),
            scale_factor=1.7,
            mode="bilinear",
            align_corners=True,
            recompute_scale_factor=True,
        ),
        "interpolate-sf-int-tuple": c("interpolate", rand(1, 2, 3, 4), scale_factor=(2, 3)),
        "interpolate-linear-3d": c("interpolate", rand(2, 3, 5), size=8, mode="linear"),
        "interpolate-linear-3d-sf": c(
            "interpolate", rand(2, 3, 5), scale_factor=1.5, mode="linear", align_corners=False
        ),
        "interpolate-linear-3d-recompute": c(
            "interpolate", rand(2, 3, 5), scale_factor=1.7, mode="linear", recompute_scale_factor=True
        ),
        "interpolate-nearest-3d": c("interpolate", rand(2, 3, 5), size=[7]),
        "interpolate-nearest-3d-sf": c(
            "interpolate", rand(2, 3, 5), scale_factor=(1.5,), recompute_scale_factor=False
        ),
        "interpolate-linear-3d-N0": c(
            "interpolate", rand(0, 3, 5), size=4, mode="linear", align_corners=True
        ),
    }
)

# pad
CASES.update(
    {
        "pad-0d-empty-pad": c("pad", rand(), ml=True, pad=()),
        "pad-constant-1d": c("pad", rand(5), ml=True, pad=(1, 2)),
        "pad-constant-crop": c("pad", rand(2, 5), ml=True, pad=(-1, 2, 0, -1), value=1.5),
        "pad-constant-value-None": c("pad", rand(2, 3), ml=True, pad=(1, 1), value=None),
        "pad-constant-N0": c("pad", rand(0, 2, 3, 3), ml=True, pad=[1, 1, 2, 0]),
        "pad-list-reflect": c("pad", rand(1, 2, 5), ml=True, pad=[1, 1], mode="reflect"),
        "pad-reflect-unbatched": c("pad", rand(2, 3), ml=True, pad=(1, 2), mode="reflect"),
        "pad-reflect-N0": c("pad", rand(0, 2, 5, 5), ml=True, pad=(1, 1, 1, 1), mode="reflect"),
        "pad-replicate-N0": c("pad", rand(0, 2, 5, 5), ml=True, pad=(1, 2, 1, 0), mode="replicate"),
        "pad-circular-N0": c("pad", rand(0, 2, 5), ml=True, pad=(1, 2), mode="circular"),
        "pad-reflect-5d": c("pad", rand(1, 1, 3, 4, 3), ml=True, pad=(1, 1, 2, 1, 1, 0), mode="reflect"),
    }
)
for _mode in ("reflect", "replicate", "circular"):
    CASES.update(
        {
            f"pad-{_mode}-crop-2d": c("pad", rand(1, 2, 5, 6), ml=True, pad=(-1, -2, 1, -1), mode=_mode),
            f"pad-{_mode}-crop-then-pad": c("pad", rand(1, 2, 5), ml=True, pad=(-2, 3), mode=_mode),
            f"pad-{_mode}-crop-only": c("pad", rand(2, 5, 6), ml=True, pad=(-1, 0, 0, -3), mode=_mode),
            f"pad-{_mode}-crop-3d": c(
                "pad", rand(1, 1, 4, 5, 6), ml=True, pad=(-1, 1, 2, -2, -1, 1), mode=_mode
            ),
        }
    )

# losses
CASES.update(
    {
        "cross_entropy-N0-mean": c("cross_entropy", rand(0, 3), labels(0)),
        "cross_entropy-N0-sum": c("cross_entropy", rand(0, 3), labels(0), reduction="sum"),
        "cross_entropy-N0-none": c("cross_entropy", rand(0, 3), labels(0), reduction="none"),
        "cross_entropy-N0-weight-smoothing": Case(
            "cross_entropy",
            [rand(0, 3), labels(0)],
            dict(label_smoothing=0.1),
            dict(weight=cs.tensor(np.arange(1, 4, dtype=np.float32))),
            dict(weight=torch.arange(1, 4, dtype=torch.float32)),
        ),
        "cross_entropy-N0-probs": c("cross_entropy", rand(0, 3), np.zeros((0, 3), np.float32)),
        "cross_entropy-spatial0": c("cross_entropy", rand(2, 3, 0), labels(2, 0)),
        "cross_entropy-spatial0-none": c("cross_entropy", rand(2, 3, 0), labels(2, 0), reduction="none"),
        "cross_entropy-unbatched": c("cross_entropy", rand(4), np.array(2, I64)),
        "cross_entropy-unbatched-none": c("cross_entropy", rand(4), np.array(1, I64), reduction="none"),
        "cross_entropy-unbatched-probs": c("cross_entropy", rand(4), np.abs(rand(4, seed=2))),
        "cross_entropy-probs-spatial": c(
            "cross_entropy", rand(2, 3, 4), np.abs(rand(2, 3, 4, seed=2)), label_smoothing=0.2
        ),
        "cross_entropy-probs-weight-sum": Case(
            "cross_entropy",
            [rand(3, 4), np.abs(rand(3, 4, seed=2))],
            dict(reduction="sum"),
            dict(weight=cs.tensor(np.arange(1, 5, dtype=np.float32))),
            dict(weight=torch.arange(1, 5, dtype=torch.float32)),
        ),
        "cross_entropy-all-ignored": c("cross_entropy", rand(2, 3), np.full(2, -100, I64)),
        "cross_entropy-ignore-index": c(
            "cross_entropy", rand(4, 3), np.array([0, 2, 1, 2], I64), ignore_index=2
        ),
        "cross_entropy-legacy-size_average": c("cross_entropy", rand(4, 3), labels(4), size_average=False),
        "cross_entropy-legacy-reduce": c("cross_entropy", rand(4, 3), labels(4), reduce=False),
        "nll_loss-N0-spatial": c("nll_loss", rand(0, 3, 2), labels(0, 2)),
        "nll_loss-N0": c("nll_loss", rand(0, 3), labels(0)),
        "nll_loss-N0-none": c("nll_loss", rand(0, 3), labels(0), reduction="none"),
        "nll_loss-unbatched": c("nll_loss", rand(4), np.array(3, I64)),
        "nll_loss-spatial0": c("nll_loss", rand(2, 3, 4, 0), labels(2, 4, 0), reduction="sum"),
        "nll_loss-legacy": c("nll_loss", rand(4, 3), labels(4), size_average=True, reduce=True),
        "mse_loss-0d": c("mse_loss", rand(), rand(seed=1)),
        "mse_loss-0d-none": c("mse_loss", rand(), rand(seed=1), reduction="none"),
        "mse_loss-3d": c("mse_loss", rand(2, 3, 4), rand(2, 3, 4, seed=1), reduction="sum"),
        "mse_loss-N0": c("mse_loss", rand(0, 3), rand(0, 3, seed=1)),
        "mse_loss-N0-sum": c("mse_loss", rand(0, 3), rand(0, 3, seed=1), reduction="sum"),
        "mse_loss-broadcast": c("mse_loss", rand(3, 1), rand(4, seed=1)),
        "mse_loss-broadcast-none": c("mse_loss", rand(3, 1), rand(4, seed=1), reduction="none"),
        "mse_loss-broadcast-0d-target": c("mse_loss", rand(2, 3), rand(seed=1), reduction="sum"),
        "mse_loss-weight-mean": Case(
            "mse_loss",
            [rand(2, 3), rand(2, 3, seed=1)],
            ours_kw=dict(weight=cs.tensor(np.abs(rand(2, 3, seed=2)))),
            theirs_kw=dict(weight=torch.tensor(np.abs(rand(2, 3, seed=2)))),
        ),
        "mse_loss-weight-none": Case(
            "mse_loss",
            [rand(2, 3), rand(2, 3, seed=1)],
            dict(reduction="none"),
            ours_kw=dict(weight=cs.tensor(np.abs(rand(2, 3, seed=2)))),
            theirs_kw=dict(weight=torch.tensor(np.abs(rand(2, 3, seed=2)))),
        ),
        "mse_loss-legacy-reduce": c("mse_loss", rand(2, 3), rand(2, 3, seed=1), reduce=False),
        "mse_loss-legacy-size_average": c("mse_loss", rand(2, 3), rand(2, 3, seed=1), size_average=False),
    }
)


@dataclass
class ErrorCase:
    """PyTorch raises; convscope raises ValueError/TypeError naming the function."""

    fn: str
    arrays: list
    kwargs: dict = field(default_factory=dict)


def e(fn, *arrays, **kwargs):
    return ErrorCase(fn, list(arrays), kwargs)


ERROR_CASES = {
    "conv2d-Cout0": e("conv2d", rand(2, 3, 5, 5), conv_w(0, 3, 3, 3)),
    "conv2d-H0": e("conv2d", rand(2, 3, 0, 5), conv_w(4, 3, 1, 1)),
    "conv2d-H0-padded": e("conv2d", rand(2, 3, 0, 5), conv_w(4, 3, 1, 1), padding=1),
    "conv2d-5d": e("conv2d", rand(1, 1, 4, 5, 5), conv_w(4, 1, 3, 3)),
    "conv2d-3tuple": e("conv2d", rand(1, 1, 5, 5), conv_w(4, 1, 3, 3), stride=(1, 1, 1)),
    "conv2d-same-strided": e("conv1d", rand(1, 4, 5), conv_w(4, 4, 3), padding="same", stride=2)
    if False
    else e("conv2d", rand(1, 4, 5, 5), conv_w(4, 4, 3, 3), padding="bogus"),
    "conv1d-L0": e("conv1d", rand(1, 3, 0), conv_w(4, 3, 1)),
    "conv1d-2tuple": e("conv1d", rand(1, 3, 5), conv_w(4, 3, 1), stride=(1, 1)),
    "conv_transpose2d-Cin0": e("conv_transpose2d", rand(2, 0, 5, 5), conv_w(0, 4, 3, 3)),
    "conv_transpose2d-Cout0": e("conv_transpose2d", rand(2, 3, 5, 5), conv_w(3, 0, 3, 3)),
    "conv_transpose2d-H0": e("conv_transpose2d", rand(2, 3, 0, 5), conv_w(3, 4, 3, 3)),
    "max_pool2d-C0": e("max_pool2d", rand(2, 0, 4, 4), kernel_size=2),
    "max_pool2d-unbatched-C0": e("max_pool2d", rand(0, 4, 4), kernel_size=2),
    "max_pool2d-H0": e("max_pool2d", rand(2, 3, 0, 4), kernel_size=1),
    "max_pool2d-pad-over-half": e("max_pool2d", rand(1, 1, 4, 4), kernel_size=2, padding=2),
    "max_pool2d-3tuple": e("max_pool2d", rand(1, 1, 4, 4), kernel_size=(2, 2, 2)),
    "avg_pool2d-C0": e("avg_pool2d", rand(2, 0, 4, 4), kernel_size=2),
    "avg_pool2d-H0": e("avg_pool2d", rand(2, 3, 0, 4), kernel_size=1),
    "adaptive_avg_pool2d-H0": e("adaptive_avg_pool2d", rand(2, 3, 0, 4), output_size=2),
    "adaptive_avg_pool2d-1tuple": e("adaptive_avg_pool2d", rand(2, 3, 4, 4), output_size=(2,)),
    "adaptive_max_pool2d-C0": e("adaptive_max_pool2d", rand(2, 0, 4, 4), output_size=2),
    "adaptive_max_pool2d-1tuple": e("adaptive_max_pool2d", rand(2, 3, 4, 4), output_size=(2,)),
    "linear-0d": e("linear", rand(), rand(4, 1)),
    "softmax-0d-dim1": e("softmax", rand(), dim=1),
    "log_softmax-dim3": e("log_softmax", rand(2, 3), dim=2),
    "batch_norm-1d-stats": e("batch_norm", rand(3), rand(3), rand(3)),
    "batch_norm-0d": e("batch_norm", rand(), rand(), rand()),
    "batch_norm-N1-train": e("batch_norm", rand(1, 3), rand(3), rand(3), training=True),
    "batch_norm-1value-train": e("batch_norm", rand(1, 3, 1), None, None, training=True),
    "dropout-p": e("dropout", rand(3), p=1.5),
    "interpolate-C0": e("interpolate", rand(2, 0, 4, 4), scale_factor=2),
    "interpolate-H0": e("interpolate", rand(2, 1, 0, 4), size=3),
    "interpolate-size-1tuple": e("interpolate", rand(2, 1, 4, 4), size=(3,)),
    "interpolate-sf-1tuple": e("interpolate", rand(2, 1, 4, 4), scale_factor=(2.0,)),
    "interpolate-sf-empty-output": e("interpolate", rand(1, 1, 4, 4), scale_factor=0.1),
    "interpolate-size0": e("interpolate", rand(1, 1, 4, 4), size=0),
    "interpolate-size-float": e("interpolate", rand(1, 1, 4, 4), size=3.0),
    "interpolate-size-and-sf": e("interpolate", rand(1, 1, 4, 4), size=3, scale_factor=2),
    "interpolate-recompute-with-size": e(
        "interpolate", rand(1, 1, 4, 4), size=3, recompute_scale_factor=True
    ),
    "interpolate-bilinear-3d": e("interpolate", rand(2, 1, 4), size=3, mode="bilinear"),
    "interpolate-linear-4d": e("interpolate", rand(2, 1, 4, 4), size=3, mode="linear"),
    "interpolate-2d": e("interpolate", rand(1, 4), size=3),
    "interpolate-nearest-align": e("interpolate", rand(1, 1, 4, 4), size=3, align_corners=False),
    "interpolate-antialias-nearest": e("interpolate", rand(1, 1, 4, 4), size=3, antialias=True),
    "pad-reflect-C0": e("pad", rand(2, 0, 5, 5), pad=(1, 1, 1, 1), mode="reflect"),
    "pad-reflect-1d": e("pad", rand(5), pad=(1, 2), mode="reflect"),
    "pad-reflect-too-wide": e("pad", rand(1, 2, 3), pad=(3, 0), mode="reflect"),
    "pad-replicate-H0": e("pad", rand(2, 1, 0, 5), pad=(1, 1, 1, 1), mode="replicate"),
    "pad-replicate-crop-all": e("pad", rand(1, 2, 3), pad=(-3, 0), mode="replicate"),
    "pad-constant-crop-too-much": e("pad", rand(2, 3), pad=(-2, -2)),
    "pad-odd": e("pad", rand(2, 3), pad=(1,)),
    "leaky_relu-int": e("leaky_relu", np.arange(-2, 3)),
    "softmax-int": e("softmax", np.arange(-2, 3), dim=0),
    "softmax-float-dim": e("softmax", rand(2, 3), dim=1.0),
    "pad-reflect-value": e("pad", rand(1, 2, 5), pad=(1, 1), mode="reflect", value=1.0),
    "pad-unknown-mode": e("pad", rand(1, 2, 5), pad=(1, 1), mode="zeros"),
    "max_pool2d-kernel0": e("max_pool2d", rand(1, 1, 4, 4), kernel_size=0),
    "avg_pool2d-divisor0": e("avg_pool2d", rand(1, 1, 4, 4), kernel_size=2, divisor_override=0),
    "conv2d-groups0": e("conv2d", rand(1, 2, 4, 4), conv_w(2, 2, 3, 3), groups=0),
    "linear-bias-shape": e("linear", rand(4, 3), rand(5, 3), rand(4)),
    "dropout-negative-p": e("dropout", rand(3), p=-0.1),
    "cross_entropy-smoothing": e("cross_entropy", rand(4, 3), labels(4), label_smoothing=1.5),
    "conv2d-0d": e("conv2d", rand(), conv_w(1, 1, 1, 1)),
    "max_pool2d-0d": e("max_pool2d", rand(), kernel_size=1),
    "adaptive_avg_pool2d-1d": e("adaptive_avg_pool2d", rand(4), output_size=1),
    "interpolate-0d": e("interpolate", rand(), size=2),
    "pad-0d-nonempty-pad": e("pad", rand(), pad=(1, 1)),
    "cross_entropy-0d": e("cross_entropy", rand(), np.array(0, I64)),
    "cross_entropy-C0": e("cross_entropy", rand(2, 0), labels(2)),
    "cross_entropy-bad-reduction": e("cross_entropy", rand(2, 3), labels(2), reduction="avg"),
    "nll_loss-label-out-of-range": e("nll_loss", rand(2, 3), np.array([0, 3], I64)),
    "mse_loss-bad-broadcast": e("mse_loss", rand(3), rand(4)),
    "mse_loss-bad-reduction": e("mse_loss", rand(3), rand(3), reduction="avg"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_edge_case_parity(name, backend):
    CASES[name].run()


@pytest.mark.parametrize("name", list(BN_CASES))
def test_batch_norm_edge_case_parity(name, backend):
    x, c_stats, training, *rest = BN_CASES[name]
    affine = rest[0] if rest else True
    kw = rest[1] if len(rest) > 1 else {}
    ours, theirs, arrays = bn(x, c_stats, training, affine, **kw)
    assert_parity(ours, theirs, arrays)


def test_linear_1d_weight_with_bias_on_batched_input():
    """PyTorch 2.13 documents a (in_features,) weight but its addmm path fails once a bias is
    added to a batched input; convscope gives linear(x, w) + b (checked against PyTorch without
    the bias, and by central differences)."""
    x, w, b = rand(2, 3), rand(3, seed=1), rand(seed=2)
    assert_parity(
        lambda x, w, b: F.linear(x, w, b), lambda x, w, b: TF.linear(x, w) + b, [x, w, b], multilinear=True
    )
    assert_gradcheck(lambda x, w, b: F.linear(x, w, b), [x, w, b])


@pytest.mark.parametrize(
    "x_shape,w_shape",
    [((2, 0, 5, 5), (4, 0, 3, 3)), ((0, 5, 5), (4, 0, 3, 3)), ((2, 0, 5), (4, 0, 3))],
)
@pytest.mark.parametrize("bias", [True, False])
def test_conv_over_zero_input_channels_is_the_bias(x_shape, w_shape, bias):
    """C_in = 0: every output is an empty sum plus the bias. (PyTorch 2.13 returns an empty
    (N, 0, H_out, W_out) tensor here, whatever C_out and the bias; convscope keeps C_out.)"""
    fn = F.conv1d if len(w_shape) == 3 else F.conv2d
    x = cs.tensor(rand(*x_shape), requires_grad=True)
    w = cs.tensor(rand(*w_shape), requires_grad=True)
    b = cs.tensor(rand(4), requires_grad=True) if bias else None
    out = fn(x, w, b, padding=1)
    spatial = tuple(n + 2 - k + 1 for n, k in zip(x_shape[-(len(w_shape) - 2) :], w_shape[2:], strict=True))
    batch = x_shape[:1] if len(x_shape) == len(w_shape) else ()
    assert out.shape == batch + (4,) + spatial and out.dtype == np.float32
    view = (4,) + (1,) * len(spatial)
    np.testing.assert_array_equal(
        out.numpy(), np.broadcast_to(b.numpy().reshape(view) if bias else 0, out.shape)
    )
    g = rand(*out.shape, seed=9)
    out.backward(cs.tensor(g))
    assert x.grad.shape == x_shape and w.grad.shape == w_shape
    if bias:
        axes = tuple(a for a in range(g.ndim) if a != len(batch))
        np.testing.assert_allclose(b.grad.numpy(), g.sum(axis=axes), rtol=1e-6)


@pytest.mark.parametrize("name", list(ERROR_CASES))
def test_edge_case_raises_like_torch(name):
    case = ERROR_CASES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(Exception):  # noqa: B017 - torch's exception types vary by op
            getattr(TF, case.fn)(
                *[None if a is None else torch.tensor(a) for a in case.arrays], **case.kwargs
            )
    with pytest.raises((ValueError, TypeError)) as info:
        getattr(F, case.fn)(
            *[None if a is None else cs.tensor(a, dtype=a.dtype) for a in case.arrays], **case.kwargs
        )
    assert info.type.__module__.startswith("convscope") or info.type in (ValueError, TypeError)
    assert case.fn in str(info.value), f"message does not name {case.fn}: {info.value}"
    assert "numpy" not in str(info.value).lower() and "zero-size array" not in str(info.value)


@pytest.mark.parametrize(
    "fn,values",
    [("relu", [-2, 0, 3]), ("sigmoid", [-2, 0, 3]), ("tanh", [-2, 0, 3]), ("sigmoid", [True, False])],
)
def test_integer_input_dtype_as_torch(fn, values):
    """relu keeps an integer dtype; sigmoid and tanh of integers give float32 (PyTorch's default)."""
    x = np.array(values)
    ours = getattr(F, fn)(cs.tensor(x, dtype=x.dtype))
    theirs = getattr(TF, fn)(torch.tensor(x))
    assert ours.dtype == np.dtype(str(theirs.dtype).replace("torch.", ""))
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)


@pytest.mark.parametrize("shape", [(), (0, 3), (2, 0, 4)])
def test_dropout_training_keeps_shape_and_gradient_shape(shape):
    """Random dropout cannot be compared value by value; its shape and gradient shape can."""
    cs.manual_seed(0)
    x = cs.tensor(rand(*shape), requires_grad=True)
    out = F.dropout(x, p=0.5, training=True)
    assert out.shape == shape and out.dtype == np.float32
    out.sum().backward()
    assert x.grad.shape == shape
    kept = out.numpy() != 0
    np.testing.assert_allclose(x.grad.numpy()[kept], 2.0)


@pytest.mark.parametrize(
    "op,arrays",
    [
        (lambda x: F.pad(x, (-1, 2, 1, -2), mode="reflect"), [rand(1, 2, 4, 5)]),
        (lambda x: F.pad(x, (2, -1, -1, 1), mode="replicate"), [rand(1, 2, 4, 5)]),
        (lambda x: F.pad(x, (-2, 1, 1, -1), mode="circular"), [rand(1, 2, 4, 5)]),
        (lambda x, t: F.mse_loss(x, t, reduction="mean"), [rand(3, 1), rand(4, seed=1)]),
        (lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1), [rand(3, 4), np.abs(rand(3, 4, seed=2))]),
        (
            lambda x: F.interpolate(x, scale_factor=1.7, mode="bilinear", recompute_scale_factor=True),
            [rand(1, 1, 3, 4)],
        ),
    ],
    ids=[
        "pad-reflect-crop",
        "pad-replicate-crop",
        "pad-circular-crop",
        "mse-broadcast",
        "ce-soft-targets",
        "bilinear-recompute",
    ],
)
def test_new_paths_against_central_differences(op, arrays):
    """The new code paths, checked in float64 without PyTorch."""
    assert_gradcheck(op, arrays)
