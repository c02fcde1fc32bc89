/* Max and average pooling, forward and backward, one (image, channel) plane at a time.
 *
 * Computes exactly what convscope.kernels.pool computes (read it, and the reference
 * version, first), bit for bit in float32:
 *
 * - max: taps scanned row by row; a larger value replaces the best (ties keep the first);
 *   a NaN always replaces it (so the last NaN wins); padding never wins; a window whose
 *   in-bounds taps are all -inf (or that has none) reports -inf and its first in-bounds
 *   tap, clipped into the plane. Indices are int64 flat h*W + w positions.
 * - max backward: dx[idx] += g in output order (np.add.at's order).
 * - average: the taps of the padded window summed in row-major order, padding as +0.0,
 *   divided by the float32 divisor the caller computed (PyTorch's rules).
 * - average backward: share = g / div, then each input adds the shares of the windows
 *   that cover it in tap order, starting from +0.0 (NumPy's "gp[tap] += share" order).
 *
 * Geometry g[10]: h, w, kh, kw, sh, sw, ph, pw, dh, dw; hout, wout are passed separately.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    long h, w, kh, kw, sh, sw, ph, pw, dh, dw, hout, wout;
} pgeom_t;

static pgeom_t make_pgeom(const int *g, int hout, int wout)
{
    pgeom_t s = {g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], hout, wout};
    return s;
}

/* first in-bounds position start + m*dil (m >= 0), clipped to n - 1 */
static long first_valid(long start, long dil, long n)
{
    long first = start < 0 ? start + (-start + dil - 1) / dil * dil : start;
    return first < n - 1 ? first : n - 1;
}

/* the 2x2 stride-2 window without padding, dilation or ceil-mode overhang: the common case */
static void max2x2(const float *x, float *y, int64_t *idx, const pgeom_t *s)
{
    for (long oh = 0; oh < s->hout; oh++) {
        const float *r0 = x + 2 * oh * s->w, *r1 = r0 + s->w;
        float *yr = y + oh * s->wout;
        int64_t *ir = idx ? idx + oh * s->wout : NULL;
        for (long ow = 0; ow < s->wout; ow++) {
            const long c = 2 * ow;
            const float v[4] = {r0[c], r0[c + 1], r1[c], r1[c + 1]};
            float best = -INFINITY;
            int k = -1;
            for (int t = 0; t < 4; t++)
                if (isnan(v[t]) || (!isnan(best) && v[t] > best))
                    best = v[t], k = t;
            yr[ow] = best;
            if (ir)
                ir[ow] = k < 0 ? 2 * oh * s->w + c : (2 * oh + (k >> 1)) * s->w + c + (k & 1);
        }
    }
}

static void max_general(const float *x, float *y, int64_t *idx, const pgeom_t *s)
{
    for (long oh = 0; oh < s->hout; oh++) {
        const long h0 = oh * s->sh - s->ph;
        for (long ow = 0; ow < s->wout; ow++) {
            const long w0 = ow * s->sw - s->pw;
            float best = -INFINITY;
            long at = -1;
            for (long i = 0; i < s->kh; i++) {
                const long r = h0 + i * s->dh;
                if (r < 0 || r >= s->h)
                    continue;
                for (long j = 0; j < s->kw; j++) {
                    const long c = w0 + j * s->dw;
                    if (c < 0 || c >= s->w)
                        continue;
                    const float v = x[r * s->w + c];
                    if (isnan(v) || (!isnan(best) && v > best))
                        best = v, at = r * s->w + c;
                }
            }
            y[oh * s->wout + ow] = best;
            if (idx)
                idx[oh * s->wout + ow] =
                    at >= 0 ? at : first_valid(h0, s->dh, s->h) * s->w + first_valid(w0, s->dw, s->w);
        }
    }
}

/* y, idx (planes, hout, wout) from x (planes, h, w); idx may be NULL */
void cs_max_pool2d_forward(const float *x, float *y, int64_t *idx, long planes, const int *g, int hout,
                           int wout)
{
    const pgeom_t s = make_pgeom(g, hout, wout);
    const int fast = s.kh == 2 && s.kw == 2 && s.sh == 2 && s.sw == 2 && s.ph == 0 && s.pw == 0 &&
                     s.dh == 1 && s.dw == 1 && 2 * s.hout <= s.h && 2 * s.wout <= s.w;
    const long in = s.h * s.w, out = s.hout * s.wout;
    for (long p = 0; p < planes; p++) {
        int64_t *ip = idx ? idx + p * out : NULL;
        if (fast)
            max2x2(x + p * in, y + p * out, ip, &s);
        else
            max_general(x + p * in, y + p * out, ip, &s);
    }
}

/* dx (planes, h*w) = scatter-add of gy (planes, out) at idx, in output order */
void cs_max_pool2d_backward(const float *gy, const int64_t *idx, float *dx, long planes, long in,
                            long out)
{
    for (long p = 0; p < planes; p++) {
        float *d = dx + p * in;
        const float *gp = gy + p * out;
        const int64_t *ip = idx + p * out;
        memset(d, 0, sizeof(float) * in);
        for (long m = 0; m < out; m++)
            d[ip[m]] += gp[m];
    }
}

/* y (planes, hout, wout) = window sums / div (hout, wout) */
void cs_avg_pool2d_forward(const float *x, float *y, const float *div, long planes, const int *g,
                           int hout, int wout)
{
    const pgeom_t s = make_pgeom(g, hout, wout);
    const long in = s.h * s.w, out = s.hout * s.wout;
    for (long p = 0; p < planes; p++) {
        const float *xp = x + p * in;
        float *yp = y + p * out;
        for (long oh = 0; oh < s.hout; oh++) {
            const long h0 = oh * s.sh - s.ph;
            for (long ow = 0; ow < s.wout; ow++) {
                const long w0 = ow * s.sw - s.pw;
                float acc = 0.0f;
                int first = 1;
                for (long i = 0; i < s.kh; i++) {
                    const long r = h0 + i;
                    const int row_in = r >= 0 && r < s.h;
                    for (long j = 0; j < s.kw; j++) {
                        const long c = w0 + j;
                        const float v = row_in && c >= 0 && c < s.w ? xp[r * s.w + c] : 0.0f;
                        acc = first ? v : acc + v;
                        first = 0;
                    }
                }
                yp[oh * s.wout + ow] = acc / div[oh * s.wout + ow];
            }
        }
    }
}

/* dx (planes, h, w) from gy (planes, hout, wout): gathered shares in tap order */
void cs_avg_pool2d_backward(const float *gy, const float *div, float *dx, float *share, long planes,
                            const int *g, int hout, int wout)
{
    const pgeom_t s = make_pgeom(g, hout, wout);
    const long in = s.h * s.w, out = s.hout * s.wout;
    for (long p = 0; p < planes; p++) {
        const float *gp = gy + p * out;
        float *d = dx + p * in;
        for (long m = 0; m < out; m++)
            share[m] = gp[m] / div[m];
        for (long r = 0; r < s.h; r++)
            for (long c = 0; c < s.w; c++) {
                float acc = 0.0f;
                for (long i = 0; i < s.kh; i++) {
                    const long th = r + s.ph - i;
                    if (th < 0 || th % s.sh)
                        continue;
                    const long oh = th / s.sh;
                    if (oh >= s.hout)
                        continue;
                    for (long j = 0; j < s.kw; j++) {
                        const long tw = c + s.pw - j;
                        if (tw < 0 || tw % s.sw)
                            continue;
                        const long ow = tw / s.sw;
                        if (ow < s.wout)
                            acc += share[oh * s.wout + ow];
                    }
                }
                d[r * s.w + c] = acc;
            }
    }
}
