"""The one place that owns sliding-window arithmetic.

Every layer, the summary, the calculator and the docs call these functions:
the output-size formula of a convolution or pooling window, the 'same'
padding rule, the transposed-convolution output size and the receptive-field
step. Nothing else in convscope re-derives them. :class:`ConvGeometry` bundles
one window's whole geometry (kernel, stride, padding per side, dilation,
groups, input and output size): the kernels of every backend, the autograd
ops' saved context, the summary and the convolution traces all use it.

Padding inside the kernels has one form, per side:
``((top, bottom), (left, right))`` (:data:`Pads`); :func:`as_pads` turns the
user-facing forms into it.

Notation (per spatial axis): ``n`` input size, ``k`` kernel size, ``s``
stride, ``p`` zero padding on each side, ``d`` dilation. The effective
kernel extent is ``d*(k-1) + 1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

Pair = tuple[int, int]
#: Zero padding per side of the two spatial axes: ((top, bottom), (left, right)).
Pads = tuple[Pair, Pair]
NO_PADS: Pads = ((0, 0), (0, 0))


def effective_kernel(kernel: int, dilation: int = 1) -> int:
    """Span of a dilated kernel: ``d*(k-1) + 1`` input positions."""
    return dilation * (kernel - 1) + 1


def conv_output_size(
    size: int,
    kernel: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
    padding_after: int | None = None,
) -> int:
    """Output length of a sliding window along one axis.

    ``out = floor((n + p_before + p_after - d*(k-1) - 1) / s) + 1``; with
    symmetric padding this is the lecture's ``(W - F + 2P)/S + 1``.

    Args:
        size (int): input length ``n``.
        kernel (int): window length ``k``.
        stride (int, default 1): step ``s``.
        padding (int, default 0): zeros before the input (and after it,
            unless ``padding_after`` is given).
        dilation (int, default 1): spacing ``d`` between window taps.
        ceil_mode (bool, default False): round up instead of down, as
            PyTorch's pooling does: a last window that would start inside the
            right padding is dropped.
        padding_after (int or None): zeros after the input, for asymmetric
            padding such as 'same' at even kernels.

    Returns:
        int: the output length; it may be ``<= 0`` when the window does not
        fit, which callers turn into an error naming their layer.
    """
    after = padding if padding_after is None else padding_after
    span = size + padding + after - effective_kernel(kernel, dilation)
    if span < 0:
        return 0
    if ceil_mode:
        out = -(-span // stride) + 1
        # PyTorch: the last window must start inside the input or left padding
        if (out - 1) * stride >= size + padding:
            out -= 1
        return out
    return span // stride + 1


def same_padding(size: int, kernel: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
    """Padding (before, after) that gives ``out = ceil(n / s)``.

    This is TensorFlow's 'SAME' rule, valid at any stride (PyTorch accepts
    padding='same' only at stride 1, where it agrees with this rule). An odd
    total puts the extra zero after the input (bottom/right).
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + effective_kernel(kernel, dilation) - size, 0)
    return total // 2, total - total // 2


def conv_transpose_output_size(
    size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1, output_padding: int = 0
) -> int:
    """Output length of a transposed convolution along one axis.

    ``out = (n - 1)*s - 2p + d*(k-1) + output_padding + 1``, the inverse of
    :func:`conv_output_size` (``output_padding`` picks among the input
    sizes that a strided convolution maps to the same output size).
    """
    return (size - 1) * stride - 2 * padding + effective_kernel(kernel, dilation) + output_padding


def adaptive_window(index: int, in_size: int, out_size: int) -> tuple[int, int]:
    """[start, end) of output cell ``index`` of an adaptive pool (PyTorch's rule)."""
    start = (index * in_size) // out_size
    end = -(-((index + 1) * in_size) // out_size)
    return start, end


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of one feature-map position along one axis.

    Attributes:
        size: how many input pixels one output position sees.
        jump: distance in input pixels between neighbouring output positions
            (the effective stride; may be fractional after upsampling).
        start: input coordinate of the centre of output position 0. Its
            negative offset ``-(start - (size-1)/2)`` is the effective padding.
    """

    size: float = 1
    jump: float = 1
    start: float = 0.0  # centre of input pixel 0

    @property
    def padding(self) -> float:
        """Effective zero padding: how far the first window reaches left of pixel 0."""
        return (self.size - 1) / 2 - self.start

    def span(self, index: int) -> tuple[float, float]:
        """First and last input coordinate seen by output position ``index`` (may lie in padding)."""
        centre = self.start + index * self.jump
        return centre - (self.size - 1) / 2, centre + (self.size - 1) / 2


def receptive_field_step(
    rf: ReceptiveField, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> ReceptiveField:
    """Receptive field after a conv/pool window applied to a map with field ``rf``.

    ``size' = size + (d*(k-1)) * jump``, ``jump' = jump * s``,
    ``start' = start + ((d*(k-1))/2 - p) * jump``.
    Three stacked 3x3 stride-1 convs give sizes 3, 5, 7.
    """
    extent = effective_kernel(kernel, dilation) - 1
    return ReceptiveField(
        size=rf.size + extent * rf.jump,
        jump=rf.jump * stride,
        start=rf.start + (extent / 2 - padding) * rf.jump,
    )


def normalize_tuple(value: int | Sequence[int], n: int, name: str, layer: object = "") -> tuple[int, ...]:
    """Turn an int, a 1-sequence or a length-``n`` sequence of ints into an n-tuple.

    A 1-sequence means the same value on every axis, as PyTorch's conv and pooling arguments
    accept (``padding=(1,)``).

    Raises:
        TypeError: when ``value`` is neither an int nor a sequence of ints.
        ValueError: when the sequence has the wrong length.
    """
    # a layer's name is formatted only for a message (layers pass it on every forward)
    if isinstance(value, bool):
        raise TypeError(f"{_where(layer)}{name} must be an int or a tuple of {n} ints, got bool {value!r}")
    if isinstance(value, int) or (hasattr(value, "__index__") and not isinstance(value, Sequence)):
        return (int(value),) * n
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) == 1 and n > 1:
            value = tuple(value) * n
        if len(value) != n or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ValueError(
                f"{_where(layer)}{name} must be an int or a tuple of 1 or {n} ints, got {value!r}"
            )
        return tuple(int(v) for v in value)
    raise TypeError(
        f"{_where(layer)}{name} must be an int or a tuple of {n} ints, got {type(value).__name__} {value!r}"
    )


def _where(layer) -> str:
    """The ``"<layer>: "`` prefix of a message ("" without a layer)."""
    text = str(layer) if layer else ""
    return f"{text}: " if text else ""


def receptive_field_transpose_step(
    rf: ReceptiveField, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> ReceptiveField:
    """Receptive field after a transposed convolution (learnable upsampling).

    Output position ``o`` gathers the input-map positions ``i`` with
    ``o = i*s - p + d*k`` for a tap k, i.e. at most ``ceil((d*(K-1)+1) / s)``
    neighbouring positions; neighbouring outputs are ``jump / s`` input pixels apart.
    """
    taps = -(-effective_kernel(kernel, dilation) // stride)
    return ReceptiveField(
        size=rf.size + (taps - 1) * rf.jump,
        jump=rf.jump / stride,
        start=rf.start + (padding - (effective_kernel(kernel, dilation) - 1) / 2) / stride * rf.jump,
    )


def receptive_field_union(fields) -> ReceptiveField | None:
    """The field covering all of ``fields`` (where branches meet, e.g. a residual add).

    The result spans from the leftmost to the rightmost input pixel any branch sees,
    i.e. the maximum over the paths; the jump is the largest branch jump.
    """
    fields = [f for f in fields if f is not None]
    if not fields:
        return None
    spans = [f.span(0) for f in fields]
    left, right = min(lo for lo, _ in spans), max(hi for _, hi in spans)
    return ReceptiveField(size=right - left + 1, jump=max(f.jump for f in fields), start=(left + right) / 2)


def as_pads(padding) -> Pads:
    """The kernels' padding form ``((top, bottom), (left, right))`` from an int, ``(ph, pw)``
    (symmetric) or an already per-side pair of pairs."""
    if isinstance(padding, int):
        return ((padding, padding), (padding, padding))
    h, w = padding
    if type(h) is tuple and type(w) is tuple:  # already per side (the kernels' own form)
        return padding
    if isinstance(h, int) and isinstance(w, int):
        return ((int(h), int(h)), (int(w), int(w)))
    return ((int(h[0]), int(h[1])), (int(w[0]), int(w[1])))


class ConvGeometry(NamedTuple):
    """The geometry of one sliding-window op (convolution, transposed convolution, pooling).

    Attributes:
        kernel: (KH, KW).
        stride: (sh, sw).
        padding: ((top, bottom), (left, right)) zeros (or -inf for max pooling).
        dilation: (dh, dw).
        groups: channel groups (1 for pooling).
        in_size: (H, W) of the input.
        out_size: (H_out, W_out) of the output.
        transposed: a transposed convolution: ``in_size`` and ``out_size`` are its own input
            and output, ``padding`` is its (symmetric) padding, the output is the input
            gradient of the convolution with this kernel, stride, padding and dilation.
        output_padding: extra rows/columns at the bottom/right of a transposed output.
        ceil_mode: pooling rounded the output size up.

    Example:
        >>> ConvGeometry.conv((32, 32), (5, 5), padding=2).out_size
        (32, 32)
    """

    kernel: Pair
    stride: Pair = (1, 1)
    padding: Pads = NO_PADS
    dilation: Pair = (1, 1)
    groups: int = 1
    in_size: Pair = (0, 0)
    out_size: Pair = (0, 0)
    transposed: bool = False
    output_padding: Pair = (0, 0)
    ceil_mode: bool = False

    @classmethod
    def conv(
        cls,
        in_size: Sequence[int],
        kernel: Sequence[int],
        stride: Sequence[int] = (1, 1),
        padding=0,
        dilation: Sequence[int] = (1, 1),
        groups: int = 1,
        ceil_mode: bool = False,
    ) -> ConvGeometry:
        """Geometry of a convolution or pooling window; ``out_size`` by :func:`conv_output_size`
        (may hold values < 1 when the window does not fit: callers raise
        :func:`window_too_large` naming their layer)."""
        pads = as_pads(padding)
        k, s, d = _pair(kernel), _pair(stride), _pair(dilation)
        (pt, pb), (pl, pr) = pads
        out = (
            conv_output_size(int(in_size[0]), k[0], s[0], pt, d[0], ceil_mode, pb),
            conv_output_size(int(in_size[1]), k[1], s[1], pl, d[1], ceil_mode, pr),
        )
        return cls(k, s, pads, d, int(groups), _pair(in_size), out, False, (0, 0), bool(ceil_mode))

    @classmethod
    def transpose(
        cls,
        in_size: Sequence[int],
        kernel: Sequence[int],
        stride: Sequence[int] = (1, 1),
        padding=0,
        output_padding: Sequence[int] = (0, 0),
        dilation: Sequence[int] = (1, 1),
        groups: int = 1,
    ) -> ConvGeometry:
        """Geometry of a transposed convolution; ``out_size`` by :func:`conv_transpose_output_size`
        (symmetric ``padding`` only, as in PyTorch)."""
        pads = as_pads(padding)
        k, s, d, op = _pair(kernel), _pair(stride), _pair(dilation), _pair(output_padding)
        out = tuple(
            conv_transpose_output_size(int(in_size[i]), k[i], s[i], pads[i][0], d[i], op[i]) for i in range(2)
        )
        return cls(k, s, pads, d, int(groups), _pair(in_size), out, True, op)  # type: ignore[arg-type]

    @property
    def span(self) -> Pair:
        """Effective kernel extent per axis: ``d*(k-1) + 1``."""
        return (
            effective_kernel(self.kernel[0], self.dilation[0]),
            effective_kernel(self.kernel[1], self.dilation[1]),
        )

    @property
    def padded_size(self) -> Pair:
        """(H + top + bottom, W + left + right) of the input."""
        (pt, pb), (pl, pr) = self.padding
        return (self.in_size[0] + pt + pb, self.in_size[1] + pl + pr)

    @property
    def fits(self) -> bool:
        """Whether the output has at least one position per axis."""
        return min(self.out_size) >= 1

    def as_conv(self) -> ConvGeometry:
        """For a transposed convolution: the convolution whose input gradient it is
        (input ``out_size`` -> output ``in_size``); a convolution is returned as is."""
        if not self.transposed:
            return self
        return ConvGeometry(
            self.kernel, self.stride, self.padding, self.dilation, self.groups, self.out_size, self.in_size
        )

    def receptive_field(
        self, fields: tuple[ReceptiveField, ReceptiveField]
    ) -> tuple[ReceptiveField, ReceptiveField]:
        """The receptive-field step along H and W (:func:`receptive_field_step`, or its
        transposed form), from the fields of the input map to those of the output map."""
        step = receptive_field_transpose_step if self.transposed else receptive_field_step
        return (
            step(fields[0], self.kernel[0], self.stride[0], self.padding[0][0], self.dilation[0]),
            step(fields[1], self.kernel[1], self.stride[1], self.padding[1][0], self.dilation[1]),
        )


def _pair(v) -> Pair:
    if type(v) is tuple and len(v) == 2:
        return v
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


class InputTooSmallError(ValueError):
    """A window (kernel or pooling) larger than its padded input: the feature map vanishes."""


def window_too_large(
    layer: object, geometry: ConvGeometry, input_shape: Sequence[int], spatial_dims: int = 2
) -> InputTooSmallError:
    """The one error for "window larger than the padded input" (convolutions and pooling).

    Args:
        layer: the layer's or function's name, to start the message.
        geometry: the window's geometry.
        input_shape: the input's shape, for the message.
        spatial_dims: 1 for a 1-D layer (a 2-D geometry over a height-1 image): sizes show one axis.
    """
    span, padded = geometry.span[2 - spatial_dims :], geometry.padded_size[2 - spatial_dims :]
    return InputTooSmallError(
        f"{layer}: window {_size(span)} is larger than the padded input {_size(padded)} "
        f"(input of shape {tuple(input_shape)}); expected a padded input at least as large as the window"
    )


def _size(values: Sequence[int]) -> str:
    return "x".join(str(v) for v in values)
