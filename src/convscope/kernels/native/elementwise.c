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
    long j = 0;
    for (; j + VL <= len; j += VL)
        vstore(gx + j, cs_relu_grad_v(vload(g + j), vload(out + j)));
    for (; j < len; j++)
        gx[j] = cs_relu_grad1(g[j], out[j]);
}
