/* Batch-norm passes over (N, C, L) float32 arrays, one image range per call.
 *
 * Computes what convscope.kernels.batchnorm computes (read that first): statistics of
 * d = x - m (m near the mean, so large means do not cancel against small deviations),
 * each (image, channel) row summed in VL float lanes and then added in double.
 */
#include "common.h"

static inline double row_sum(const float *a, long l, float shift)
{
    vf acc = vzero();
    const vf sv = vsplat(shift);
    long i = 0;
    for (; i + VL <= l; i += VL)
        acc += vload(a + i) - sv;
    double s = vsum(acc);
    for (; i < l; i++)
        s += a[i] - shift;
    return s;
}

/* s1[c] += sum d, s2[c] += sum d*d over the n images, d = x - m[c] */
void cs_bn_stats(const float *x, int n, int c, long l, const float *m, double *s1, double *s2)
{
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++) {
            const float *row = x + ((long)i * c + ch) * l;
            const float mc = m[ch];
            const vf mv = vsplat(mc);
            vf a1 = vzero(), a2 = vzero();
            long j = 0;
            for (; j + VL <= l; j += VL) {
                const vf d = vload(row + j) - mv;
                a1 += d;
                a2 += d * d;
            }
            double t1 = vsum(a1), t2 = vsum(a2);
            for (; j < l; j++) {
                const float d = row[j] - mc;
                t1 += d;
                t2 += (double)d * d;
            }
            s1[ch] += t1;
            s2[ch] += t2;
        }
}

/* out = (x - m[c]) * a[c] + b[c] */
void cs_bn_apply(const float *x, float *out, int n, int c, long l, const float *m, const float *a,
                 const float *b)
{
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++) {
            const long off = ((long)i * c + ch) * l;
            const float *row = x + off;
            float *o = out + off;
            const vf mv = vsplat(m[ch]), av = vsplat(a[ch]), bv = vsplat(b[ch]);
            long j = 0;
            for (; j + VL <= l; j += VL)
                vstore(o + j, (vload(row + j) - mv) * av + bv);
            for (; j < l; j++)
                o[j] = (row[j] - m[ch]) * a[ch] + b[ch];
        }
}

/* g, or ReLU's gradient of g when the batch norm's output went through a fused ReLU (y: that
 * output, NULL for none); the wrappers below call the always-inlined loops with y known to
 * be NULL or not, so the choice is made once per call, not per element */
#define MASKED_V(gv, y, off) ((y) ? cs_relu_grad_v((gv), vload((y) + (off))) : (gv))
#define MASKED_1(g1, y, off) ((y) ? cs_relu_grad1((g1), (y)[off]) : (g1))

static inline __attribute__((always_inline)) void bn_backward_sums(
    const float *g, const float *x, const float *y, int n, int c, long l, const float *mean,
    double *sg, double *sgd, double *sd)
{
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++) {
            const long off = ((long)i * c + ch) * l;
            const float *gr = g + off, *xr = x + off, *yr = y ? y + off : NULL;
            const float mc = mean[ch];
            const vf mv = vsplat(mc);
            vf a1 = vzero(), a2 = vzero(), a3 = vzero();
            long j = 0;
            for (; j + VL <= l; j += VL) {
                const vf gv = MASKED_V(vload(gr + j), yr, j), d = vload(xr + j) - mv;
                a1 += gv;
                a2 += gv * d;
                a3 += d;
            }
            double t1 = vsum(a1), t2 = vsum(a2), t3 = vsum(a3);
            for (; j < l; j++) {
                const float d = xr[j] - mc, g1 = MASKED_1(gr[j], yr, j);
                t1 += g1;
                t2 += (double)g1 * d;
                t3 += d;
            }
            sg[ch] += t1;
            sgd[ch] += t2;
            sd[ch] += t3;
        }
}

/* sg[c] += sum g, sgd[c] += sum g*d, sd[c] += sum d over the n images, d = x - mean[c]; g masked
 * by y > 0 when y (the forward's output after its fused ReLU) is not NULL */
void cs_bn_backward_sums(const float *g, const float *x, const float *y, int n, int c, long l,
                         const float *mean, double *sg, double *sgd, double *sd)
{
    if (y)
        bn_backward_sums(g, x, y, n, c, l, mean, sg, sgd, sd);
    else
        bn_backward_sums(g, x, NULL, n, c, l, mean, sg, sgd, sd);
}

static inline __attribute__((always_inline)) void bn_backward_input(
    const float *g, const float *x, const float *y, float *dx, int n, int c, long l,
    const float *mean, const float *s, const float *k, const float *b)
{
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++) {
            const long off = ((long)i * c + ch) * l;
            const float *gr = g + off, *xr = x + off, *yr = y ? y + off : NULL;
            float *o = dx + off;
            const vf mv = vsplat(mean[ch]), sv = vsplat(s[ch]), kv = vsplat(k[ch]),
                     bv = vsplat(b[ch]);
            long j = 0;
            for (; j + VL <= l; j += VL)
                vstore(o + j, MASKED_V(vload(gr + j), yr, j) * sv - ((vload(xr + j) - mv) * kv + bv));
            for (; j < l; j++)
                o[j] = MASKED_1(gr[j], yr, j) * s[ch] - ((xr[j] - mean[ch]) * k[ch] + b[ch]);
        }
}

/* dx = g * s[c] - ((x - mean[c]) * k[c] + b[c]); g masked as in cs_bn_backward_sums */
void cs_bn_backward_input(const float *g, const float *x, const float *y, float *dx, int n, int c,
                          long l, const float *mean, const float *s, const float *k, const float *b)
{
    if (y)
        bn_backward_input(g, x, y, dx, n, c, l, mean, s, k, b);
    else
        bn_backward_input(g, x, NULL, dx, n, c, l, mean, s, k, b);
}

/* s[c] += sum of a over the n images */
void cs_channel_sums(const float *a, int n, int c, long l, double *s)
{
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++)
            s[ch] += row_sum(a + ((long)i * c + ch) * l, l, 0.0f);
}

/* out = relu((x - m) * a + b): cs_bn_apply's expression, then ReLU, in one pass */
void cs_bn_apply_relu(const float *x, float *out, int n, int c, long l, const float *m,
                      const float *a, const float *b)
{
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++) {
            const long off = ((long)i * c + ch) * l;
            const float *row = x + off;
            float *o = out + off;
            const vf mv = vsplat(m[ch]), av = vsplat(a[ch]), bv = vsplat(b[ch]);
            long j = 0;
            for (; j + VL <= l; j += VL)
                vstore(o + j, cs_relu_v((vload(row + j) - mv) * av + bv));
            for (; j < l; j++)
                o[j] = cs_relu1((row[j] - m[ch]) * a[ch] + b[ch]);
        }
}

/* out = relu(p + q) over len floats: the residual add and its ReLU in one pass */
void cs_add_relu(const float *p, const float *q, float *out, long len)
{
    long j = 0;
    for (; j + VL <= len; j += VL)
        vstore(out + j, cs_relu_v(vload(p + j) + vload(q + j)));
    for (; j < len; j++)
        out[j] = cs_relu1(p[j] + q[j]);
}
