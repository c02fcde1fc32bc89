/* ReLU forward and backward, one memory pass each.
 *
 * Computes exactly what convscope.kernels.elementwise computes, bit for bit:
 * - forward: np.maximum(x, 0): NaN passes through (sign kept), -0.0 becomes +0.0;
 * - backward: g * (out > 0) in float32: g where out > 0, else g * 0.0f (so -0.0 for a
 *   negative g, NaN for a NaN or infinite g), as NumPy's multiply by the boolean mask gives.
 * NumPy's maximum against a scalar 0 takes a slow broadcast loop (about 3x the time of one
 * contiguous pass), which is why the native backend has its own.
 */
#include "common.h"

typedef cs_vi vi;

/* out = max(x, 0) over len floats */
void cs_relu_forward(const float *x, float *out, long len)
{
    long j = 0;
    for (; j + VL <= len; j += VL)
        vstore(out + j, cs_relu_v(vload(x + j)));
    for (; j < len; j++)
        out[j] = cs_relu1(x[j]);
}

/* gx = g * (out > 0) over len floats */
void cs_relu_backward(const float *g, const float *out, float *gx, long len)
{
    const vf zero = vzero();
    long j = 0;
    for (; j + VL <= len; j += VL) {
        const vf gv = vload(g + j);
        const vi keep = (vi)(vload(out + j) > zero);
        /* g where kept, else g * 0 (not plain 0: the sign of zero and NaNs follow NumPy) */
        vstore(gx + j, (vf)(((vi)gv & keep) | ((vi)(gv * zero) & ~keep)));
    }
    for (; j < len; j++)
        gx[j] = out[j] > 0.0f ? g[j] : g[j] * 0.0f;
}
