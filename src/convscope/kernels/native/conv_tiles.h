/* Direct 2-D convolution (cross-correlation): the method, shared tiles and layout helpers.
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
 *
 * Files: conv_tiles.c (tiles, planes, packing), conv_forward.c, conv_input_grad.c,
 * conv_weight_grad.c.
 */
#ifndef CONVSCOPE_NATIVE_CONV_TILES_H
#define CONVSCOPE_NATIVE_CONV_TILES_H

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

/* shared by the conv files of the library, not exported from it */
#define CS_HIDDEN __attribute__((visibility("hidden")))

typedef struct {
    int cin, h, w, cout, kh, kw, sh, sw, pt, pb, pl, pr, dh, dw, hout, wout;
} geom_t;

static inline geom_t make_geom(const int *g)
{
    geom_t s = {g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7],
                g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]};
    return s;
}

/* forward planes: per channel sh*sw phase planes of hq x wq */
typedef struct {
    long hq, wq, plane, cs, m, mv;
} planes_t;

static inline planes_t forward_planes(const geom_t *s)
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

CS_HIDDEN int cvec_width(int cout);
CS_HIDDEN int cvec_width_forward(int cout, long wout, long wq);
CS_HIDDEN void corr_block(const float *in, long cs, int cin, const long *toff, int nt,
                          const float *wp, float *tile, long ldo, long mv);
CS_HIDDEN void cvec_block(const float *in, long cs, int cin, const long *toff, int nt,
                          const float *wp, float *tile, long ldo, long rows, long cols, long wq,
                          int cov);
CS_HIDDEN void forward_offsets(const geom_t *s, const planes_t *p, long *toff);
CS_HIDDEN void fill_planes(const float *x, const geom_t *s, const planes_t *p, float *buf);
CS_HIDDEN void pack_weight(const float *w, int cout, int cin, int nt, float *wp, int cob);

#endif
