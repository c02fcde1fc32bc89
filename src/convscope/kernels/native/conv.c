/* Direct 2-D convolution (cross-correlation): forward, input gradient, weight gradient.
 *
 * Computes exactly what convscope.kernels.conv computes (read the NumPy and reference
 * versions first); this file only makes it fast.
 *
 * One primitive does all three passes: a correlation over "flat planes". An image's
 * channels are copied, zero padded, into planes of width Wq, one plane per stride phase
 * (rows a::sh, columns b::sw of the padded image), so that every kernel tap (kh, kw)
 * reads a contiguous run of one plane starting at a fixed offset toff[t]:
 *
 *     out[co][m] = sum_ci sum_t in[ci*cs + toff[t] + m] * w[co][ci][t],   m = oh*Wq + ow
 *
 * Entries with ow >= W_out ("wrap" columns) are computed and dropped. No im2col matrix
 * exists: the only scratch is one padded copy of the images in flight.
 *
 * Register blocking: a tile holds COB output channels x MB vectors of VL output pixels in
 * registers; per (ci, tap) it loads MB input vectors and broadcasts COB weights, so each
 * load feeds COB fused multiply-adds. Weights are packed [co_block][ci][tap][COB] so the
 * broadcasts walk memory in order. The weight gradient keeps COB output channels x TB
 * taps of accumulators and reduces over pixels (and images) before one horizontal sum.
 *
 * The vector type is GCC's generic vector extension: the compiler emits AVX-512, AVX2,
 * SSE or NEON for the -march it is given (the build uses the host's), so there is one
 * source and no intrinsics; VL follows the widest registers the target has.
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"

/* forward / input-gradient tile: COB output channels x MB_MAX vectors */
#ifndef COB
#define COB 4
#endif
#if VL == 16
#ifndef MB_MAX
#define MB_MAX 6
#endif
#define TB_MAX 6
#else
#define MB_MAX 3
#define TB_MAX 3
#endif

/* ---- the correlation tile ------------------------------------------------------------ */

static inline __attribute__((always_inline)) void corr_tile(const float *in, long cs, int cin,
                                                            const long *toff, int nt,
                                                            const float *wp, float *out, long ldo,
                                                            const int mb)
{
    vf acc[COB][MB_MAX];
    for (int o = 0; o < COB; o++)
        for (int v = 0; v < mb; v++)
            acc[o][v] = vzero();
    for (int c = 0; c < cin; c++) {
        const float *ic = in + (long)c * cs;
        for (int t = 0; t < nt; t++) {
            const float *ip = ic + toff[t];
            vf xv[MB_MAX];
            for (int v = 0; v < mb; v++)
                xv[v] = vload(ip + v * VL);
            for (int o = 0; o < COB; o++) {
                const vf wv = vsplat(wp[o]);
                for (int v = 0; v < mb; v++)
                    acc[o][v] += wv * xv[v];
            }
            wp += COB;
        }
    }
    for (int o = 0; o < COB; o++)
        for (int v = 0; v < mb; v++)
            vstore(out + o * ldo + v * VL, acc[o][v]);
}

/* out[o][m] for m in [0, mv*VL), one output-channel block; in points at channel 0, pixel 0 */
static void corr_block(const float *in, long cs, int cin, const long *toff, int nt,
                       const float *wp, float *out, long ldo, long mv)
{
    long v0 = 0;
    for (; v0 + MB_MAX <= mv; v0 += MB_MAX)
        corr_tile(in + v0 * VL, cs, cin, toff, nt, wp, out + v0 * VL, ldo, MB_MAX);
    switch (mv - v0) {
    case 0:
        break;
    case 1:
        corr_tile(in + v0 * VL, cs, cin, toff, nt, wp, out + v0 * VL, ldo, 1);
        break;
    case 2:
        corr_tile(in + v0 * VL, cs, cin, toff, nt, wp, out + v0 * VL, ldo, 2);
        break;
#if MB_MAX > 3
    case 3:
        corr_tile(in + v0 * VL, cs, cin, toff, nt, wp, out + v0 * VL, ldo, 3);
        break;
    case 4:
        corr_tile(in + v0 * VL, cs, cin, toff, nt, wp, out + v0 * VL, ldo, 4);
        break;
    default:
        corr_tile(in + v0 * VL, cs, cin, toff, nt, wp, out + v0 * VL, ldo, 5);
        break;
#else
    default:
        break;
#endif
    }
}

/* ---- the output-channel-vector tile (oneDNN's orientation) --------------------------------
 * For C_out a multiple of 4*VL: registers hold COV = 4 vectors of VL output channels x NP output
 * pixels of one row; per (ci, tap) COV weight vectors are loaded (aligned, packed
 * [co_block][ci][tap][COV*VL]) and each input pixel is broadcast once. No wrap column is
 * computed, which matters on small maps (8x8 with padding 1: 20% of the flat tile's work). */

static inline __attribute__((always_inline)) void cvec_tile(const float *in, long cs, int cin,
                                                            const long *toff, int nt,
                                                            const float *wp, float *out,
                                                            long ldo, const int cov, const int np)
{
    vf acc[4][6];
    for (int v = 0; v < cov; v++)
        for (int p = 0; p < np; p++)
            acc[v][p] = vzero();
    for (int c = 0; c < cin; c++) {
        const float *ic = in + (long)c * cs;
        for (int t = 0; t < nt; t++) {
            const float *ip = ic + toff[t];
            vf wv[4];
            for (int v = 0; v < cov; v++) {
                wv[v] = vload(wp + v * VL);
                KEEP_IN_REGISTER(wv[v]);
            }
            for (int p = 0; p < np; p++) {
                const vf xb = vsplat(ip[p]);
                for (int v = 0; v < cov; v++)
                    acc[v][p] += wv[v] * xb;
            }
            wp += cov * VL;
        }
    }
    for (int v = 0; v < cov; v++)
        for (int p = 0; p < np; p++)
            for (int l = 0; l < VL; l++)
                out[(long)(v * VL + l) * ldo + p] = acc[v][p][l];
}

#define CVEC_CASE(COVN, NP)                                                                   \
    case NP:                                                                                  \
        cvec_tile(in, cs, cin, toff, nt, wp, out, ldo, COVN, NP);                             \
        break;

static void cvec_tile4(const float *in, long cs, int cin, const long *toff, int nt,
                       const float *wp, float *out, long ldo, int np)
{
    switch (np) {
        CVEC_CASE(4, 1) CVEC_CASE(4, 2) CVEC_CASE(4, 3) CVEC_CASE(4, 4) CVEC_CASE(4, 5)
        CVEC_CASE(4, 6) default : break;
    }
}

/* output-channel vectors per block for c_out (0: use the flat tile instead) */
static int cvec_width(int cout)
{
#if VL == 16 && defined(__x86_64__)
    if (cout % (4 * VL) == 0)
        return 4;
#else
    (void)cout;
#endif
    return 0;
}

/* tile[o][oh*wq + ow] for the valid pixels (oh < rows, ow < cols) of one channel block */
static void cvec_block(const float *in, long cs, int cin, const long *toff, int nt,
                       const float *wp, float *tile, long ldo, long rows, long cols, long wq,
                       int cov)
{
    const int np_max = 6; /* 4 x 6 accumulators + 4 weight vectors + 1 broadcast */
    (void)cov;
    const long tiles = (cols + np_max - 1) / np_max;
    const int np = (int)((cols + tiles - 1) / tiles);
    for (long r = 0; r < rows; r++)
        for (long c0 = 0; c0 < cols; c0 += np) {
            const int n = cols - c0 < np ? (int)(cols - c0) : np;
            const long m = r * wq + c0;
            cvec_tile4(in + m, cs, cin, toff, nt, wp, tile + m, ldo, n);
        }
}

/* ---- layout helpers --------------------------------------------------------------------- */

typedef struct {
    int cin, h, w, cout, kh, kw, sh, sw, pt, pb, pl, pr, dh, dw, hout, wout;
} geom_t;

static geom_t make_geom(const int *g)
{
    geom_t s = {g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7],
                g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]};
    return s;
}

/* forward planes: per channel sh*sw phase planes of hq x wq */
typedef struct {
    long hq, wq, plane, cs, m, mv;
} planes_t;

static planes_t forward_planes(const geom_t *s)
{
    planes_t p;
    p.hq = (s->h + s->pt + s->pb + s->sh - 1) / s->sh;
    p.wq = (s->w + s->pl + s->pr + s->sw - 1) / s->sw;
    p.plane = p.hq * p.wq;
    p.cs = (long)s->sh * s->sw * p.plane;
    p.m = (long)s->hout * p.wq;
    p.mv = (p.m + VL - 1) / VL;
    return p;
}

static void forward_offsets(const geom_t *s, const planes_t *p, long *toff)
{
    for (int i = 0; i < s->kh; i++)
        for (int j = 0; j < s->kw; j++) {
            const int rh = i * s->dh, rw = j * s->dw;
            const int phase = (rh % s->sh) * s->sw + rw % s->sw;
            toff[i * s->kw + j] = phase * p->plane + (long)(rh / s->sh) * p->wq + rw / s->sw;
        }
}

/* one image's channels (cin x h x w) -> zero-padded phase planes */
static void fill_planes(const float *x, const geom_t *s, const planes_t *p, float *buf)
{
    for (int c = 0; c < s->cin; c++) {
        const float *xc = x + (long)c * s->h * s->w;
        float *bc = buf + (long)c * p->cs;
        for (int a = 0; a < s->sh; a++)
            for (int b = 0; b < s->sw; b++) {
                float *pl = bc + (long)(a * s->sw + b) * p->plane;
                for (long i = 0; i < p->hq; i++) {
                    float *row = pl + i * p->wq;
                    const long r = a + i * s->sh - s->pt;
                    if (r < 0 || r >= s->h) {
                        memset(row, 0, sizeof(float) * p->wq);
                        continue;
                    }
                    const float *xr = xc + r * s->w;
                    if (s->sw == 1) {
                        const long lo = s->pl, hi = s->pl + s->w;
                        memset(row, 0, sizeof(float) * lo);
                        memcpy(row + lo, xr, sizeof(float) * s->w);
                        memset(row + hi, 0, sizeof(float) * (p->wq - hi));
                        continue;
                    }
                    /* columns j0 <= j < j1 read the image: b + j*sw - pl in [0, w) */
                    long j0 = (s->pl - b + s->sw - 1) / s->sw, j1 = (s->pl + s->w - b + s->sw - 1) / s->sw;
                    j0 = j0 < 0 ? 0 : (j0 > p->wq ? p->wq : j0);
                    j1 = j1 < j0 ? j0 : (j1 > p->wq ? p->wq : j1);
                    memset(row, 0, sizeof(float) * j0);
                    const float *src = xr + b + j0 * s->sw - s->pl;
                    for (long j = 0; j < j1 - j0; j++)
                        row[j0 + j] = src[j * s->sw];
                    memset(row + j1, 0, sizeof(float) * (p->wq - j1));
                }
            }
    }
}

/* w (cout, cin, taps) -> [ceil(cout/cob)][cin][taps][cob], zero filled */
static void pack_weight(const float *w, int cout, int cin, int nt, float *wp, int cob)
{
    const int nb = (cout + cob - 1) / cob;
    for (int cb = 0; cb < nb; cb++)
        for (int c = 0; c < cin; c++)
            for (int t = 0; t < nt; t++)
                for (int o = 0; o < cob; o++) {
                    const int co = cb * cob + o;
                    *wp++ = co < cout ? w[((long)co * cin + c) * nt + t] : 0.0f;
                }
}

/* ---- forward ------------------------------------------------------------------------------ */

/* y[n] = conv(x[n]) + bias for the n images given; geometry g[16] (see geom_t) */
int cs_conv2d_forward(const float *x, const float *w, const float *bias, float *y, int n,
                      const int *g)
{
    const geom_t s = make_geom(g);
    const planes_t p = forward_planes(&s);
    const int cov = cvec_width(s.cout), cob = cov ? cov * VL : COB;
    const int nt = s.kh * s.kw, nb = (s.cout + cob - 1) / cob;
    const long slack = (long)MB_MAX * VL + p.mv * VL;
    float *buf = cs_alloc(sizeof(float) * (s.cin * p.cs + slack));
    float *wp = cs_alloc(sizeof(float) * (long)nb * cob * s.cin * nt);
    float *tile = cs_alloc(sizeof(float) * cob * p.mv * VL);
    long *toff = cs_alloc(sizeof(long) * nt);
    if (!buf || !wp || !tile || !toff) {
        free(buf), free(wp), free(tile), free(toff);
        return -1;
    }
    memset(buf + s.cin * p.cs, 0, sizeof(float) * slack);
    forward_offsets(&s, &p, toff);
    pack_weight(w, s.cout, s.cin, nt, wp, cob);
    const long hw_out = (long)s.hout * s.wout;
    for (int i = 0; i < n; i++) {
        fill_planes(x + (long)i * s.cin * s.h * s.w, &s, &p, buf);
        float *yi = y + (long)i * s.cout * hw_out;
        for (int cb = 0; cb < nb; cb++) {
            const float *wb = wp + (long)cb * s.cin * nt * cob;
            if (cov)
                cvec_block(buf, p.cs, s.cin, toff, nt, wb, tile, p.mv * VL, s.hout, s.wout, p.wq,
                           cov);
            else
                corr_block(buf, p.cs, s.cin, toff, nt, wb, tile, p.mv * VL, p.mv);
            for (int o = 0; o < cob && cb * cob + o < s.cout; o++) {
                const int co = cb * cob + o;
                const float b = bias ? bias[co] : 0.0f;
                const float *src = tile + (long)o * p.mv * VL;
                float *dst = yi + co * hw_out;
                for (int r = 0; r < s.hout; r++)
                    for (int c = 0; c < s.wout; c++)
                        dst[(long)r * s.wout + c] = src[r * p.wq + c] + b;
            }
        }
    }
    free(buf), free(wp), free(tile), free(toff);
    return 0;
}

/* ---- input gradient ----------------------------------------------------------------------- */

/* floor division for possibly negative numerators */
static long fdiv(long a, long b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

/* dx[n] for the n images given: per stride phase of dx, a stride-1 correlation of the
 * zero-padded output gradient with the flipped taps that land on that phase */
int cs_conv2d_backward_input(const float *gy, const float *w, float *dx, int n, const int *g)
{
    const geom_t s = make_geom(g);
    const int nt_all = s.kh * s.kw;
    /* per axis: qh[i] = (i*dh - h0 - pt)/sh for taps landing on phase h0; pad sizes */
    long pt = 0, pl = 0, hg = s.hout, wg = s.wout;
    for (int pass = 0; pass < 2; pass++)
        for (int h0 = 0; h0 < s.sh; h0++) {
            const long nh = h0 < s.h ? (s.h - h0 + s.sh - 1) / s.sh : 0;
            for (int i = 0; i < s.kh; i++) {
                const long num = (long)i * s.dh - h0 - s.pt;
                if (num - fdiv(num, s.sh) * s.sh != 0)
                    continue;
                const long q = fdiv(num, s.sh);
                if (pass == 0 && q > pt)
                    pt = q;
                if (pass == 1 && nh + pt - q > hg)
                    hg = nh + pt - q;
            }
            if (pass == 1 && s.hout + pt > hg)
                hg = s.hout + pt;
        }
    for (int pass = 0; pass < 2; pass++)
        for (int w0 = 0; w0 < s.sw; w0++) {
            const long nw = w0 < s.w ? (s.w - w0 + s.sw - 1) / s.sw : 0;
            for (int j = 0; j < s.kw; j++) {
                const long num = (long)j * s.dw - w0 - s.pl;
                if (num - fdiv(num, s.sw) * s.sw != 0)
                    continue;
                const long q = fdiv(num, s.sw);
                if (pass == 0 && q > pl)
                    pl = q;
                if (pass == 1 && nw + pl - q > wg)
                    wg = nw + pl - q;
            }
            if (pass == 1 && s.wout + pl > wg)
                wg = s.wout + pl;
        }
    const long cs = hg * wg;
    const long nh_max = (s.h + s.sh - 1) / s.sh, mv_max = (nh_max * wg + VL - 1) / VL;
    const long slack = (long)MB_MAX * VL + mv_max * VL;
    const int cov = cvec_width(s.cin), cob = cov ? cov * VL : COB;
    const int nb = (s.cin + cob - 1) / cob;
    float *buf = cs_alloc(sizeof(float) * (s.cout * cs + slack));
    float *wp = cs_alloc(sizeof(float) * (long)nb * cob * s.cout * nt_all);
    float *wsub = cs_alloc(sizeof(float) * (long)s.cin * s.cout * nt_all);
    float *tile = cs_alloc(sizeof(float) * cob * mv_max * VL);
    long *toff = cs_alloc(sizeof(long) * nt_all * s.sh * s.sw);
    int *ntap = cs_alloc(sizeof(int) * s.sh * s.sw);
    float **wps = cs_alloc(sizeof(float *) * s.sh * s.sw);
    if (!buf || !wp || !wsub || !tile || !toff || !ntap || !wps) {
        free(buf), free(wp), free(wsub), free(tile), free(toff), free(ntap), free(wps);
        return -1;
    }
    memset(buf + s.cout * cs, 0, sizeof(float) * slack);
    /* per phase: tap offsets and the packed transposed sub-kernel */
    float *wcur = wp;
    for (int h0 = 0; h0 < s.sh; h0++)
        for (int w0 = 0; w0 < s.sw; w0++) {
            const int ph = h0 * s.sw + w0;
            long *to = toff + (long)ph * nt_all;
            int nt = 0;
            /* sub-kernel (cin, cout, taps) */
            for (int i = 0; i < s.kh; i++) {
                const long nh = (long)i * s.dh - h0 - s.pt;
                if (nh - fdiv(nh, s.sh) * s.sh != 0)
                    continue;
                const long qh = fdiv(nh, s.sh);
                for (int j = 0; j < s.kw; j++) {
                    const long nw = (long)j * s.dw - w0 - s.pl;
                    if (nw - fdiv(nw, s.sw) * s.sw != 0)
                        continue;
                    const long qw = fdiv(nw, s.sw);
                    to[nt] = (pt - qh) * wg + (pl - qw);
                    for (int ci = 0; ci < s.cin; ci++)
                        for (int co = 0; co < s.cout; co++)
                            wsub[((long)ci * s.cout + co) * nt_all + nt] =
                                w[(((long)co * s.cin + ci) * s.kh + i) * s.kw + j];
                    nt++;
                }
            }
            ntap[ph] = nt;
            wps[ph] = wcur;
            if (nt) {
                /* wsub rows have stride nt_all: compact them to nt before packing */
                for (long r = 0; r < (long)s.cin * s.cout; r++)
                    memmove(wsub + r * nt, wsub + r * nt_all, sizeof(float) * nt);
                pack_weight(wsub, s.cin, s.cout, nt, wcur, cob);
                wcur += (long)nb * cob * s.cout * nt;
            }
        }
    const long hw_in = (long)s.h * s.w, hw_out = (long)s.hout * s.wout;
    for (int img = 0; img < n; img++) {
        /* output gradient -> zero-padded planes (cout x hg x wg), g at row pt, column pl */
        const float *gi = gy + (long)img * s.cout * hw_out;
        memset(buf, 0, sizeof(float) * s.cout * cs);
        for (int co = 0; co < s.cout; co++)
            for (int r = 0; r < s.hout; r++)
                memcpy(buf + co * cs + (pt + r) * wg + pl, gi + (co * s.hout + r) * (long)s.wout,
                       sizeof(float) * s.wout);
        float *dxi = dx + (long)img * s.cin * hw_in;
        for (int h0 = 0; h0 < s.sh && h0 < s.h; h0++)
            for (int w0 = 0; w0 < s.sw && w0 < s.w; w0++) {
                const int ph = h0 * s.sw + w0;
                const long nh = (s.h - h0 + s.sh - 1) / s.sh, nw = (s.w - w0 + s.sw - 1) / s.sw;
                if (!ntap[ph]) { /* no tap reaches these pixels */
                    for (int ci = 0; ci < s.cin; ci++)
                        for (long r = 0; r < nh; r++)
                            for (long c = 0; c < nw; c++)
                                dxi[ci * hw_in + (h0 + r * s.sh) * s.w + w0 + c * s.sw] = 0.0f;
                    continue;
                }
                const long mv = (nh * wg + VL - 1) / VL;
                for (int cb = 0; cb < nb; cb++) {
                    const long *to = toff + (long)ph * nt_all;
                    const float *wb = wps[ph] + (long)cb * s.cout * ntap[ph] * cob;
                    if (cov)
                        cvec_block(buf, cs, s.cout, to, ntap[ph], wb, tile, mv * VL, nh, nw, wg, cov);
                    else
                        corr_block(buf, cs, s.cout, to, ntap[ph], wb, tile, mv * VL, mv);
                    for (int o = 0; o < cob && cb * cob + o < s.cin; o++) {
                        const float *src = tile + (long)o * mv * VL;
                        float *dst = dxi + (long)(cb * cob + o) * hw_in + (long)h0 * s.w + w0;
                        if (s.sw == 1)
                            for (long r = 0; r < nh; r++)
                                memcpy(dst + r * s.sh * s.w, src + r * wg, sizeof(float) * nw);
                        else
                            for (long r = 0; r < nh; r++)
                                for (long c = 0; c < nw; c++)
                                    dst[r * s.sh * s.w + c * s.sw] = src[r * wg + c];
                    }
                }
            }
    }
    free(buf), free(wp), free(wsub), free(tile), free(toff), free(ntap), free(wps);
    return 0;
}

/* ---- weight gradient ---------------------------------------------------------------------- */

/* acc[o][t] += sum over pixels of gflat[o][m] * in[toff[t] + m], over all images */
static inline __attribute__((always_inline)) void wgrad_tile(const float *xin, long img_x,
                                                             const float *gin, long img_g,
                                                             long ldg, int n, long mv,
                                                             const long *toff, float *dw,
                                                             long ldw, int co_valid, const int tb)
{
    vf acc[COB][TB_MAX];
    for (int o = 0; o < COB; o++)
        for (int t = 0; t < tb; t++)
            acc[o][t] = vzero();
    for (int i = 0; i < n; i++) {
        const float *xi = xin + i * img_x, *gi = gin + i * img_g;
        for (long v = 0; v < mv; v++) {
            vf gv[COB];
            for (int o = 0; o < COB; o++)
                gv[o] = vload(gi + o * ldg + v * VL);
            for (int t = 0; t < tb; t++) {
                vf xv = vload(xi + toff[t] + v * VL);
                KEEP_IN_REGISTER(xv);
                for (int o = 0; o < COB; o++)
                    acc[o][t] += gv[o] * xv;
            }
        }
    }
    for (int o = 0; o < co_valid; o++)
        for (int t = 0; t < tb; t++)
            dw[o * ldw + t] += vsum(acc[o][t]);
}

/* Weight gradient with output-channel vectors (C_out a multiple of 4*VL): per output pixel,
 * 4 vectors of the pixel-major output gradient gT[pixel][co] times NJ broadcast inputs, one
 * for each (ci, tap) pair of the block; no horizontal sums, no wrap columns. */
static inline __attribute__((always_inline)) void wgrad_cvec_tile(
    const float *xb, long img_x, const float *gt, long img_g, int cout, int n, long rows,
    long cols, long wq, const long *poff, float *dw, long ldw, const int cov, const int nj)
{
    vf acc[4][12];
    for (int v = 0; v < cov; v++)
        for (int j = 0; j < nj; j++)
            acc[v][j] = vzero();
    for (int i = 0; i < n; i++) {
        const float *xi = xb + i * img_x, *gi = gt + i * img_g;
        for (long r = 0; r < rows; r++)
            for (long c = 0; c < cols; c++) {
                const float *gp = gi + (r * cols + c) * cout;
                const long m = r * wq + c;
                vf gv[4];
                for (int v = 0; v < cov; v++) {
                    gv[v] = vload(gp + v * VL);
                    KEEP_IN_REGISTER(gv[v]);
                }
                for (int j = 0; j < nj; j++) {
                    const vf xv = vsplat(xi[poff[j] + m]);
                    for (int v = 0; v < cov; v++)
                        acc[v][j] += gv[v] * xv;
                }
            }
    }
    for (int v = 0; v < cov; v++)
        for (int j = 0; j < nj; j++)
            for (int l = 0; l < VL; l++)
                dw[(long)(v * VL + l) * ldw + j] += acc[v][j][l];
}

#define WCV_CASE(COV, NJ)                                                                     \
    case NJ:                                                                                  \
        wgrad_cvec_tile(xb, img_x, gt, img_g, cout, n, rows, cols, wq, poff, dw, ldw, COV, NJ); \
        break;

/* nj (ci, tap) pairs: up to 6 with 4 channel vectors, up to 12 with 2 */
static void wgrad_cvec(const float *xb, long img_x, const float *gt, long img_g, int cout, int n,
                       long rows, long cols, long wq, const long *poff, float *dw, long ldw,
                       int cov, int nj)
{
    if (cov == 4)
        switch (nj) {
            WCV_CASE(4, 1) WCV_CASE(4, 2) WCV_CASE(4, 3) WCV_CASE(4, 4) WCV_CASE(4, 5)
            WCV_CASE(4, 6) default : break;
        }
    else
        switch (nj) {
            WCV_CASE(2, 1) WCV_CASE(2, 2) WCV_CASE(2, 3) WCV_CASE(2, 4) WCV_CASE(2, 5)
            WCV_CASE(2, 6) WCV_CASE(2, 7) WCV_CASE(2, 8) WCV_CASE(2, 9) WCV_CASE(2, 10)
            WCV_CASE(2, 11) WCV_CASE(2, 12) default : break;
        }
}

/* the cvec weight gradient of n images (see wgrad_cvec_tile); 0 on success */
static int wgrad_cvec_all(const float *x, const float *gy, float *dw, int n, const geom_t *s,
                          const planes_t *p)
{
    const int nt = s->kh * s->kw, npair = s->cin * nt;
    const long img_x = s->cin * p->cs, hw_in = (long)s->h * s->w;
    const long hw_out = (long)s->hout * s->wout, img_g = hw_out * s->cout;
    float *xb = cs_alloc(sizeof(float) * (n * img_x + VL));
    float *gt = cs_alloc(sizeof(float) * n * img_g);
    long *toff = cs_alloc(sizeof(long) * nt), *poff = cs_alloc(sizeof(long) * npair);
    if (!xb || !gt || !toff || !poff) {
        free(xb), free(gt), free(toff), free(poff);
        return -1;
    }
    forward_offsets(s, p, toff);
    for (int c = 0; c < s->cin; c++)
        for (int t = 0; t < nt; t++)
            poff[c * nt + t] = c * p->cs + toff[t];
    for (int i = 0; i < n; i++) {
        fill_planes(x + i * s->cin * hw_in, s, p, xb + i * img_x);
        const float *gi = gy + i * img_g;
        float *ti = gt + i * img_g;
        for (int co = 0; co < s->cout; co++)
            for (long q = 0; q < hw_out; q++)
                ti[q * s->cout + co] = gi[co * hw_out + q];
    }
    const long ldw = (long)npair;
    const int cov = s->cout % (4 * VL) == 0 ? 4 : 2, nj_max = cov == 4 ? 6 : 12;
    for (int cb = 0; cb < s->cout / (cov * VL); cb++)
        for (int k0 = 0; k0 < npair; k0 += nj_max) {
            const int nj = npair - k0 < nj_max ? npair - k0 : nj_max;
            wgrad_cvec(xb, img_x, gt + cb * cov * VL, img_g, s->cout, n, s->hout, s->wout, p->wq,
                       poff + k0, dw + (long)cb * cov * VL * ldw + k0, ldw, cov, nj);
        }
    free(xb), free(gt), free(toff), free(poff);
    return 0;
}

/* the channel-vector weight gradient needs 32 vector registers (AVX-512) */
#if VL == 16 && defined(__x86_64__)
#define CVEC_WGRAD 1
#else
#define CVEC_WGRAD 0
#endif

/* dw (cout, cin, kh, kw) += weight gradient of the n images given */
int cs_conv2d_backward_weight(const float *x, const float *gy, float *dw, int n, const int *g)
{
    const geom_t s = make_geom(g);
    const planes_t p = forward_planes(&s);
    if (CVEC_WGRAD && s.cout % (2 * VL) == 0)
        return wgrad_cvec_all(x, gy, dw, n, &s, &p);
    const int nt = s.kh * s.kw, nb = (s.cout + COB - 1) / COB;
    const long img_x = s.cin * p.cs, mr = p.mv * VL, img_g = (long)nb * COB * mr;
    const long slack = (long)VL + mr;
    float *xb = cs_alloc(sizeof(float) * (n * img_x + slack));
    float *gb = cs_alloc(sizeof(float) * n * img_g);
    long *toff = cs_alloc(sizeof(long) * nt);
    if (!xb || !gb || !toff) {
        free(xb), free(gb), free(toff);
        return -1;
    }
    memset(xb + n * img_x, 0, sizeof(float) * slack);
    forward_offsets(&s, &p, toff);
    const long hw_in = (long)s.h * s.w, hw_out = (long)s.hout * s.wout;
    for (int i = 0; i < n; i++) {
        fill_planes(x + i * s.cin * hw_in, &s, &p, xb + i * img_x);
        /* g -> flat rows of width wq, zero in the wrap columns, the padding and the tail */
        float *gi = gb + i * img_g;
        memset(gi, 0, sizeof(float) * img_g);
        for (int co = 0; co < s.cout; co++)
            for (int r = 0; r < s.hout; r++)
                memcpy(gi + co * mr + r * p.wq, gy + ((long)i * s.cout + co) * hw_out + r * s.wout,
                       sizeof(float) * s.wout);
    }
    for (int cb = 0; cb < nb; cb++) {
        const int co_valid = s.cout - cb * COB < COB ? s.cout - cb * COB : COB;
        for (int c = 0; c < s.cin; c++) {
            const float *xin = xb + c * p.cs, *gin = gb + (long)cb * COB * mr;
            float *d = dw + ((long)cb * COB * s.cin + c) * nt;
            const long ldw = (long)s.cin * nt;
            int t0 = 0;
            for (; t0 + TB_MAX <= nt; t0 += TB_MAX)
                wgrad_tile(xin, img_x, gin, img_g, mr, n, p.mv, toff + t0, d + t0, ldw, co_valid,
                           TB_MAX);
            switch (nt - t0) {
            case 0:
                break;
            case 1:
                wgrad_tile(xin, img_x, gin, img_g, mr, n, p.mv, toff + t0, d + t0, ldw, co_valid, 1);
                break;
            case 2:
                wgrad_tile(xin, img_x, gin, img_g, mr, n, p.mv, toff + t0, d + t0, ldw, co_valid, 2);
                break;
#if TB_MAX > 3
            case 3:
                wgrad_tile(xin, img_x, gin, img_g, mr, n, p.mv, toff + t0, d + t0, ldw, co_valid, 3);
                break;
            case 4:
                wgrad_tile(xin, img_x, gin, img_g, mr, n, p.mv, toff + t0, d + t0, ldw, co_valid, 4);
                break;
            default:
                wgrad_tile(xin, img_x, gin, img_g, mr, n, p.mv, toff + t0, d + t0, ldw, co_valid, 5);
                break;
#else
            default:
                break;
#endif
            }
        }
    }
    free(xb), free(gb), free(toff);
    return 0;
}
