/* The shared pieces of the direct convolution (see conv_tiles.h): the register-blocked
 * correlation tiles and the layout helpers (phase planes, tap offsets, packed weights). */
#include <stdlib.h>
#include <string.h>

#include "conv_tiles.h"

/* ---- the correlation tile ------------------------------------------------------------ */

/* Precision: each output sums C_in*taps products. One register accumulator over all of them
 * (4608 for 512 channels x 3x3) loses ~sqrt(K) float32 roundings; so the tiles sum runs of
 * about RUN_TERMS products in registers and add each run's sum to a running total, the way
 * a GEMM's K-blocking does (3-4x less round-off on deep layers, near PyTorch's). */
#define RUN_TERMS 64

/* input channels per run for nt taps */
static inline int channel_run(int nt)
{
    const int c = RUN_TERMS / (nt > 0 ? nt : 1);
    return c > 0 ? c : 1;
}

static inline __attribute__((always_inline)) void corr_tile(const float *in, long cs, int cin,
                                                            const long *toff, int nt,
                                                            const float *wp, float *out, long ldo,
                                                            const int mb)
{
    const int run = channel_run(nt);
    for (int c0 = 0; c0 == 0 || c0 < cin; c0 += run) {
        const int c1 = c0 + run < cin ? c0 + run : cin;
        vf acc[COB][MB_MAX];
        for (int o = 0; o < COB; o++)
            for (int v = 0; v < mb; v++)
                acc[o][v] = vzero();
        for (int c = c0; c < c1; c++) {
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
        /* the run's sums join the running total in the tile */
        for (int o = 0; o < COB; o++)
            for (int v = 0; v < mb; v++) {
                float *op = out + o * ldo + v * VL;
                vstore(op, c0 ? vload(op) + acc[o][v] : acc[o][v] + vzero());
            }
    }
}

/* out[o][m] for m in [0, mv*VL), one output-channel block; in points at channel 0, pixel 0 */
CS_HIDDEN void corr_block(const float *in, long cs, int cin, const long *toff, int nt,
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
    vf tot[4][6]; /* running totals of the runs (in memory: the registers hold acc) */
    const int run = channel_run(nt);
    for (int c0 = 0; c0 == 0 || c0 < cin; c0 += run) {
        const int c1 = c0 + run < cin ? c0 + run : cin;
        vf acc[4][6];
        for (int v = 0; v < cov; v++)
            for (int p = 0; p < np; p++)
                acc[v][p] = vzero();
        for (int c = c0; c < c1; c++) {
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
                tot[v][p] = c0 ? tot[v][p] + acc[v][p] : acc[v][p] + vzero();
    }
    for (int v = 0; v < cov; v++)
        for (int p = 0; p < np; p++)
            for (int l = 0; l < VL; l++)
                out[(long)(v * VL + l) * ldo + p] = tot[v][p][l];
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
CS_HIDDEN int cvec_width(int cout)
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
CS_HIDDEN void cvec_block(const float *in, long cs, int cin, const long *toff, int nt,
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

CS_HIDDEN void forward_offsets(const geom_t *s, const planes_t *p, long *toff)
{
    for (int i = 0; i < s->kh; i++)
        for (int j = 0; j < s->kw; j++) {
            const int rh = i * s->dh, rw = j * s->dw;
            const int phase = (rh % s->sh) * s->sw + rw % s->sw;
            toff[i * s->kw + j] = phase * p->plane + (long)(rh / s->sh) * p->wq + rw / s->sw;
        }
}

/* one image's channels (cin x h x w) -> zero-padded phase planes */
CS_HIDDEN void fill_planes(const float *x, const geom_t *s, const planes_t *p, float *buf)
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
CS_HIDDEN void pack_weight(const float *w, int cout, int cin, int nt, float *wp, int cob)
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
