/* The shared pieces of the direct convolution (see conv_tiles.h): the register-blocked
 * correlation tiles and the layout helpers (phase planes, tap offsets, packed weights). */
#include <stdlib.h>
#include <string.h>

#include "conv_tiles.h"

/* ---- the correlation tile ------------------------------------------------------------ */

/* Precision: each output sums C_in*taps products. One register accumulator over all of them
 * (4608 for 512 channels x 3x3) loses ~sqrt(K) float32 roundings; so the tiles sum runs of
 * about RUN_TERMS products in registers and add each run's sum to a running total, the way
 * a GEMM's K-blocking does (on deep layers 2-4x less round-off, near PyTorch's; runs of 64
 * gained little more and cost about 5% of a ResNet-20 training step). */
#define RUN_TERMS 256

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
    vf tot[4][24]; /* running totals of the runs (in memory: the registers hold acc) */
    const int run = channel_run(nt);
    for (int c0 = 0; c0 == 0 || c0 < cin; c0 += run) {
        const int c1 = c0 + run < cin ? c0 + run : cin;
        vf acc[4][24];
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

#if VL == 16 && defined(__x86_64__)
/* 2 channel vectors x up to 12 pixels, 1 x up to 24: the accumulators fill the 32 registers */
static void cvec_tile2(const float *in, long cs, int cin, const long *toff, int nt,
                       const float *wp, float *out, long ldo, int np)
{
    switch (np) {
        CVEC_CASE(2, 1) CVEC_CASE(2, 2) CVEC_CASE(2, 3) CVEC_CASE(2, 4) CVEC_CASE(2, 5)
        CVEC_CASE(2, 6) CVEC_CASE(2, 7) CVEC_CASE(2, 8) CVEC_CASE(2, 9) CVEC_CASE(2, 10)
        CVEC_CASE(2, 11) CVEC_CASE(2, 12) default : break;
    }
}

static void cvec_tile1(const float *in, long cs, int cin, const long *toff, int nt,
                       const float *wp, float *out, long ldo, int np)
{
    switch (np) {
        CVEC_CASE(1, 1) CVEC_CASE(1, 2) CVEC_CASE(1, 3) CVEC_CASE(1, 4) CVEC_CASE(1, 5)
        CVEC_CASE(1, 6) CVEC_CASE(1, 7) CVEC_CASE(1, 8) CVEC_CASE(1, 9) CVEC_CASE(1, 10)
        CVEC_CASE(1, 11) CVEC_CASE(1, 12) CVEC_CASE(1, 13) CVEC_CASE(1, 14) CVEC_CASE(1, 15)
        CVEC_CASE(1, 16) CVEC_CASE(1, 17) CVEC_CASE(1, 18) CVEC_CASE(1, 19) CVEC_CASE(1, 20)
        CVEC_CASE(1, 21) CVEC_CASE(1, 22) CVEC_CASE(1, 23) CVEC_CASE(1, 24) default : break;
    }
}
#endif

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

/* the forward's choice: also one channel vector (16 output channels) where the flat tiles
 * would compute many wrap columns (a fifth or more of their work: LeNet-5's second layer, 10
 * columns of 14, ran 20% faster so; on 32-wide maps, 6% wrap, one vector was slower, and two
 * vectors gained nothing on 32 channels) */
CS_HIDDEN int cvec_width_forward(int cout, long wout, long wq)
{
#if VL == 16 && defined(__x86_64__)
    if (cout % (4 * VL) == 0)
        return 4;
    if (cout % VL == 0 && (wq - wout) * 5 >= wq)
        return 1;
#else
    (void)cout, (void)wout, (void)wq;
#endif
    return 0;
}

/* tile[o][oh*wq + ow] for the valid pixels (oh < rows, ow < cols) of one channel block */
CS_HIDDEN void cvec_block(const float *in, long cs, int cin, const long *toff, int nt,
                       const float *wp, float *tile, long ldo, long rows, long cols, long wq,
                       int cov)
{
    /* cov x np accumulators + cov weight vectors + 1 broadcast <= 32 registers */
    const int np_max = cov == 4 ? 6 : cov == 2 ? 12 : 24;
    const long tiles = (cols + np_max - 1) / np_max;
    const int np = (int)((cols + tiles - 1) / tiles);
    for (long r = 0; r < rows; r++)
        for (long c0 = 0; c0 < cols; c0 += np) {
            const int n = cols - c0 < np ? (int)(cols - c0) : np;
            const long m = r * wq + c0;
#if VL == 16 && defined(__x86_64__)
            if (cov == 2) {
                cvec_tile2(in + m, cs, cin, toff, nt, wp, tile + m, ldo, n);
                continue;
            }
            if (cov == 1) {
                cvec_tile1(in + m, cs, cin, toff, nt, wp, tile + m, ldo, n);
                continue;
            }
#endif
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

#if defined(__GNUC__) && !defined(__clang__)
/* the short zero runs and copies below stay loops: as memset/memcpy calls (GCC's default at
 * -O3) each padded row cost three library calls for a few floats */
#define NO_LIBCALLS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define NO_LIBCALLS
#endif

#if defined(__GNUC__) && !defined(__clang__) && (VL == 16 || VL == 8 || VL == 4)
typedef int tvi __attribute__((vector_size(VL * sizeof(int))));
#if VL == 16
static const tvi EVEN_LANES = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
#elif VL == 8
static const tvi EVEN_LANES = {0, 2, 4, 6, 8, 10, 12, 14};
#else
static const tvi EVEN_LANES = {0, 2, 4, 6};
#endif
#define HAVE_EVEN_LANES 1
#endif

/* dst[j] = src[j*sw] for j < count; src_end bounds the reads (the vector path reads whole
 * pairs of vectors) */
static inline void NO_LIBCALLS copy_strided(float *dst, const float *src, long count, int sw,
                                            const float *src_end)
{
    long j = 0;
    if (sw == 1) {
        for (; j + VL <= count; j += VL)
            vstore(dst + j, vload(src + j));
    }
#ifdef HAVE_EVEN_LANES
    else if (sw == 2) {
        for (; j + VL <= count && src + 2 * (j + VL) <= src_end; j += VL)
            vstore(dst + j, __builtin_shuffle(vload(src + 2 * j), vload(src + 2 * j + VL), EVEN_LANES));
    }
#else
    (void)src_end;
#endif
    for (; j < count; j++)
        dst[j] = src[j * sw];
}

/* half a vector: the copy of rows shorter than VL (8 floats of an 8x8 map) */
typedef float vh __attribute__((vector_size(VL / 2 * sizeof(float)), aligned(4), may_alias));

/* dst[j] = src[j] for j < count, in whole vectors where they fit (no write past dst + count) */
static inline void NO_LIBCALLS copy_row(float *dst, const float *src, long count)
{
    long j = 0;
    for (; j + VL <= count; j += VL)
        vstore(dst + j, vload(src + j));
    if (VL >= 8 && j + VL / 2 <= count) {
        *(vh *)(dst + j) = *(const vh *)(src + j);
        j += VL / 2;
    }
    for (; j < count; j++)
        dst[j] = src[j];
}

/* stride 1: each channel's plane is zeroed in whole vectors, then its rows are copied in */
static void NO_LIBCALLS fill_planes_s1(const float *x, const geom_t *s, const planes_t *p, float *buf)
{
    /* image rows r0 <= r < r1 land in the plane; columns c0 <= c < c1 of each */
    const long r0 = s->pt < 0 ? -s->pt : 0, r1 = s->h < p->hq - s->pt ? s->h : p->hq - s->pt;
    const long c0 = s->pl < 0 ? -s->pl : 0, c1 = s->w < p->wq - s->pl ? s->w : p->wq - s->pl;
    for (int c = 0; c < s->cin; c++) {
        const float *xc = x + (long)c * s->h * s->w;
        float *pl = buf + (long)c * p->cs;
        long j = 0;
        for (; j + VL <= p->plane; j += VL)
            vstore(pl + j, vzero());
        for (; j < p->plane; j++)
            pl[j] = 0.0f;
        for (long r = r0; r < r1; r++)
            if (c1 > c0)
                copy_row(pl + (r + s->pt) * p->wq + s->pl + c0, xc + r * s->w + c0, c1 - c0);
    }
}

/* one image's channels (cin x h x w) -> zero-padded phase planes */
CS_HIDDEN void NO_LIBCALLS fill_planes(const float *x, const geom_t *s, const planes_t *p, float *buf)
{
    if (s->sh == 1 && s->sw == 1) {
        fill_planes_s1(x, s, p, buf);
        return;
    }
    const float *x_end = x + (long)s->cin * s->h * s->w;
    for (int c = 0; c < s->cin; c++) {
        const float *xc = x + (long)c * s->h * s->w;
        float *bc = buf + (long)c * p->cs;
        for (int a = 0; a < s->sh; a++)
            for (int b = 0; b < s->sw; b++) {
                float *pl = bc + (long)(a * s->sw + b) * p->plane;
                /* columns j0 <= j < j1 read the image: b + j*sw - pl in [0, w) */
                long j0 = (s->pl - b + s->sw - 1) / s->sw, j1 = (s->pl + s->w - b + s->sw - 1) / s->sw;
                j0 = j0 < 0 ? 0 : (j0 > p->wq ? p->wq : j0);
                j1 = j1 < j0 ? j0 : (j1 > p->wq ? p->wq : j1);
                for (long i = 0; i < p->hq; i++) {
                    float *row = pl + i * p->wq;
                    const long r = a + i * s->sh - s->pt;
                    if (r < 0 || r >= s->h) {
                        for (long j = 0; j < p->wq; j++)
                            row[j] = 0.0f;
                        continue;
                    }
                    for (long j = 0; j < j0; j++)
                        row[j] = 0.0f;
                    copy_strided(row + j0, xc + r * s->w + b + j0 * s->sw - s->pl, j1 - j0, s->sw, x_end);
                    for (long j = j1; j < p->wq; j++)
                        row[j] = 0.0f;
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
