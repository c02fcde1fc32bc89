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

#include "common.h"

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

/* v replaces best when larger, or when v is NaN (ties keep the first; a NaN best stays
 * unless a later NaN comes): the scan rule above, written branch-free so that GCC
 * vectorizes the loops below (stride-2 loads, selects) */
static inline float max_pick(float v, float best) { return v > best || v != v ? v : best; }

/* the 2x2 stride-2 window without padding, dilation or ceil-mode overhang: the common case;
 * one output row, scalar (the rows the vector version below cannot take) */
static void max2x2_row(const float *r0, const float *r1, float *yr, int64_t *ir, long w, long wout,
                       int64_t top)
{
    for (long ow = 0; ow < wout; ow++) {
        const float v[4] = {r0[2 * ow], r0[2 * ow + 1], r1[2 * ow], r1[2 * ow + 1]};
        float best = -INFINITY;
        int64_t at = 0; /* offset of the winner from the window's top-left tap (also for -inf) */
        const int64_t off[4] = {0, 1, w, w + 1};
        for (int t = 0; t < 4; t++)
            if (v[t] > best || v[t] != v[t])
                best = v[t], at = off[t];
        yr[ow] = best;
        if (ir)
            ir[ow] = top + 2 * ow + at;
    }
}

#if defined(__GNUC__) && !defined(__clang__) && (VL == 16 || VL == 8 || VL == 4)
#define POOL_VECTOR 1
typedef int pvi __attribute__((vector_size(VL * sizeof(int))));
typedef long long pvl __attribute__((vector_size(VL * sizeof(long long))));
/* an unaligned, aliasing-safe store target for pvl */
typedef long long pvl_u __attribute__((vector_size(VL * sizeof(long long)), aligned(8), may_alias));
#if VL == 16
static const pvi EVEN = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
static const pvi LANE = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
#elif VL == 8
static const pvi EVEN = {0, 2, 4, 6, 8, 10, 12, 14};
static const pvi LANE = {0, 1, 2, 3, 4, 5, 6, 7};
#else
static const pvi EVEN = {0, 2, 4, 6};
static const pvi LANE = {0, 1, 2, 3};
#endif

/* keep best unless v is larger or NaN (the scan rule above), lane by lane */
static inline pvi pick_mask(vf v, vf best) { return (pvi)(v > best) | (pvi)(v != v); }
static inline vf blend(pvi m, vf a, vf b) { return (vf)((m & (pvi)a) | (~m & (pvi)b)); }

/* VL outputs of one row from rows r0, r1 (2*VL floats read from each, starting at column 2*ow) */
static inline void max2x2_vec(const float *r0, const float *r1, float *yo, int64_t *io, long w,
                              int64_t first)
{
    const vf a0 = vload(r0), a1 = vload(r0 + VL), b0 = vload(r1), b1 = vload(r1 + VL);
    const vf v[4] = {__builtin_shuffle(a0, a1, EVEN), __builtin_shuffle(a0, a1, EVEN + 1),
                     __builtin_shuffle(b0, b1, EVEN), __builtin_shuffle(b0, b1, EVEN + 1)};
    vf best = vsplat(-INFINITY);
    pvi at = (pvi){0};
    const int off[4] = {0, 1, (int)w, (int)w + 1};
    for (int t = 0; t < 4; t++) {
        const pvi m = pick_mask(v[t], best);
        best = blend(m, v[t], best);
        at = (m & (off[t] - (pvi){0})) | (~m & at);
    }
    vstore(yo, best);
    if (io) {
        const pvl idx = __builtin_convertvector(at + 2 * LANE, pvl) + first;
        *(pvl_u *)io = idx;
    }
}
#endif

/* planes of 2x2 windows. Vector version: VL outputs at a time. A row's last group may write
 * past the row's end into the following rows' outputs, which those rows then overwrite (rows
 * run in order), and reads up to 2*VL floats from each input row from the window's start; a
 * group whose reads or writes would pass the end of the call's arrays (the next thread's chunk
 * or unowned memory) runs scalar instead. */
static void max2x2_planes(const float *x, float *y, int64_t *idx, long planes, const pgeom_t *s)
{
    const long w = s->w, wout = s->wout, hout = s->hout, in = s->h * w, out = hout * wout;
    const long x_end = planes * in, y_end = planes * out;
    const int vector = w <= 2147483647L / 4; /* int offsets in the vector version */
    for (long p = 0; p < planes; p++)
        for (long oh = 0; oh < hout; oh++) {
            const long r0 = p * in + 2 * oh * w, yo = p * out + oh * wout;
            const int64_t top = 2 * oh * w;
            long ow = 0;
#ifdef POOL_VECTOR
            for (; vector && ow < wout && r0 + w + 2 * (ow + VL) <= x_end && yo + ow + VL <= y_end; ow += VL)
                max2x2_vec(x + r0 + 2 * ow, x + r0 + w + 2 * ow, y + yo + ow, idx ? idx + yo + ow : NULL, w,
                           top + 2 * ow);
#else
            (void)vector, (void)x_end, (void)y_end;
#endif
            if (ow < wout)
                max2x2_row(x + r0 + 2 * ow, x + r0 + w + 2 * ow, y + yo + ow, idx ? idx + yo + ow : NULL, w,
                           wout - ow, top + 2 * ow);
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
    if (fast) {
        max2x2_planes(x, y, idx, planes, &s);
        return;
    }
    for (long p = 0; p < planes; p++)
        max_general(x + p * in, y + p * out, idx ? idx + p * out : NULL, &s);
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
