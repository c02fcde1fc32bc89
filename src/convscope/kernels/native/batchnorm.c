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

/* sg[c] += sum g, sgd[c] += sum g*d, sd[c] += sum d over the n images, d = x - mean[c] */
void cs_bn_backward_sums(const float *g, const float *x, int n, int c, long l, const float *mean,
                         double *sg, double *sgd, double *sd)
{
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++) {
            const long off = ((long)i * c + ch) * l;
            const float *gr = g + off, *xr = x + off;
            const float mc = mean[ch];
            const vf mv = vsplat(mc);
            vf a1 = vzero(), a2 = vzero(), a3 = vzero();
            long j = 0;
            for (; j + VL <= l; j += VL) {
                const vf gv = vload(gr + j), d = vload(xr + j) - mv;
                a1 += gv;
                a2 += gv * d;
                a3 += d;
            }
            double t1 = vsum(a1), t2 = vsum(a2), t3 = vsum(a3);
            for (; j < l; j++) {
                const float d = xr[j] - mc;
                t1 += gr[j];
                t2 += (double)gr[j] * d;
                t3 += d;
            }
            sg[ch] += t1;
            sgd[ch] += t2;
            sd[ch] += t3;
        }
}

/* dx = g * s[c] - ((x - mean[c]) * k[c] + b[c]) */
void cs_bn_backward_input(const float *g, const float *x, float *dx, int n, int c, long l,
                          const float *mean, const float *s, const float *k, const float *b)
{
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++) {
            const long off = ((long)i * c + ch) * l;
            const float *gr = g + off, *xr = x + off;
            float *o = dx + off;
            const vf mv = vsplat(mean[ch]), sv = vsplat(s[ch]), kv = vsplat(k[ch]),
                     bv = vsplat(b[ch]);
            long j = 0;
            for (; j + VL <= l; j += VL)
                vstore(o + j, vload(gr + j) * sv - ((vload(xr + j) - mv) * kv + bv));
            for (; j < l; j++)
                o[j] = gr[j] * s[ch] - ((xr[j] - mean[ch]) * k[ch] + b[ch]);
        }
}

/* s[c] += sum of a over the n images */
void cs_channel_sums(const float *a, int n, int c, long l, double *s)
{
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++)
            s[ch] += row_sum(a + ((long)i * c + ch) * l, l, 0.0f);
}

/* max(v, 0) as np.maximum(v, 0) computes it (its vector path): NaN passes through, -0.0
 * becomes +0.0 */
static inline float relu1(float v) { return v > 0.0f || v != v ? v : 0.0f; }
static inline vf relu_v(vf v)
{
    typedef int vi __attribute__((vector_size(VL * sizeof(int))));
    return (vf)((vi)v & ((vi)(v > vzero()) | (vi)(v != v)));
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
                vstore(o + j, relu_v((vload(row + j) - mv) * av + bv));
            for (; j < l; j++)
                o[j] = relu1((row[j] - m[ch]) * a[ch] + b[ch]);
        }
}

/* out = relu(p + q) over len floats: the residual add and its ReLU in one pass */
void cs_add_relu(const float *p, const float *q, float *out, long len)
{
    long j = 0;
    for (; j + VL <= len; j += VL)
        vstore(out + j, relu_v(vload(p + j) + vload(q + j)));
    for (; j < len; j++)
        out[j] = relu1(p[j] + q[j]);
}
