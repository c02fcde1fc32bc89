/* Direct 2-D convolution, forward pass (the method: conv_tiles.h). */
#include <stdlib.h>
#include <string.h>

#include "conv_tiles.h"

int cs_conv2d_forward_fused(const float *x, const float *w, const float *bias, float *y, int n,
                            const int *g, const float *scale, const float *shift, int relu,
                            const float *packed);
long cs_conv2d_forward_packed_size(const int *g);
void cs_conv2d_forward_pack(const float *w, const int *g, float *wp);

/* ---- forward ------------------------------------------------------------------------------ */

/* One channel's output rows from its tile: v = sum + b; then, with aff, v = (v - 0) * a + t
 * (eval batch norm: the expression of batchnorm.c's cs_bn_apply with a zero mean); then, with
 * relu, max(v, 0). Each step rounds as the separate passes do, so the result equals conv, then
 * batch norm, then ReLU, bit for bit. Whole vectors are stored while they end within `room`
 * floats of dst: a row's last vector may spill into the next rows (or channels, or images) of
 * this call's output, which are written after it; the tile has VL floats of slack to read. */
static inline __attribute__((always_inline)) void epilogue_channel(
    const float *src, float *dst, long rows, long wq, long wout, long room, float b, float a, float t,
    const int aff, const int relu)
{
    const float zero = 0.0f;
    const vf bv = vsplat(b), av = vsplat(a), tv = vsplat(t), zv = vzero();
    for (long r = 0; r < rows; r++, src += wq, dst += wout, room -= wout) {
        long c = 0;
        for (; c < wout && c + VL <= room; c += VL) {
            vf v = vload(src + c) + bv;
            if (aff)
                v = (v - zv) * av + tv;
            vstore(dst + c, relu ? cs_relu_v(v) : v);
        }
        for (; c < wout; c++) {
            float v = src[c] + b;
            if (aff)
                v = (v - zero) * a + t;
            dst[c] = relu ? cs_relu1(v) : v;
        }
    }
}

static void epilogue(const float *src, float *dst, long rows, long wq, long wout, long room, float b,
                     const float *scale, const float *shift, int relu)
{
    const float a = scale ? *scale : 1.0f, t = shift ? *shift : 0.0f;
    if (scale && relu)
        epilogue_channel(src, dst, rows, wq, wout, room, b, a, t, 1, 1);
    else if (scale)
        epilogue_channel(src, dst, rows, wq, wout, room, b, a, t, 1, 0);
    else if (relu)
        epilogue_channel(src, dst, rows, wq, wout, room, b, a, t, 0, 1);
    else
        epilogue_channel(src, dst, rows, wq, wout, room, b, a, t, 0, 0);
}

/* y[n] = conv(x[n]) + bias for the n images given; geometry g[16] (see geom_t) */
int cs_conv2d_forward(const float *x, const float *w, const float *bias, float *y, int n,
                      const int *g)
{
    return cs_conv2d_forward_fused(x, w, bias, y, n, g, NULL, NULL, 0, NULL);
}

/* the forward's packed weights: their size in floats, and the packing (so that the chunks of
 * one call, on several threads, share one packed copy instead of each packing its own) */
long cs_conv2d_forward_packed_size(const int *g)
{
    const geom_t s = make_geom(g);
    const planes_t p = forward_planes(&s);
    const int cov = cvec_width_forward(s.cout, s.wout, p.wq), cob = cov ? cov * VL : COB;
    return (long)((s.cout + cob - 1) / cob) * cob * s.cin * s.kh * s.kw;
}

void cs_conv2d_forward_pack(const float *w, const int *g, float *wp)
{
    const geom_t s = make_geom(g);
    const planes_t p = forward_planes(&s);
    const int cov = cvec_width_forward(s.cout, s.wout, p.wq), cob = cov ? cov * VL : COB;
    pack_weight(w, s.cout, s.cin, s.kh * s.kw, wp, cob);
}

/* y[n] = conv(x[n]) + bias, then per output channel co the eval batch-norm affine
 * (scale[co], shift[co]; NULL: none), then ReLU when relu != 0: see epilogue_channel.
 * packed: the weights from cs_conv2d_forward_pack, or NULL to pack w here. */
int cs_conv2d_forward_fused(const float *x, const float *w, const float *bias, float *y, int n,
                            const int *g, const float *scale, const float *shift, int relu,
                            const float *packed)
{
    const geom_t s = make_geom(g);
    const planes_t p = forward_planes(&s);
    const int cov = cvec_width_forward(s.cout, s.wout, p.wq), cob = cov ? cov * VL : COB;
    const int nt = s.kh * s.kw, nb = (s.cout + cob - 1) / cob;
    const long slack = (long)MB_MAX * VL + p.mv * VL;
    float *buf = cs_alloc(sizeof(float) * (s.cin * p.cs + slack));
    float *own = packed ? NULL : cs_alloc(sizeof(float) * (long)nb * cob * s.cin * nt);
    const float *wp = packed ? packed : own;
    float *tile = cs_alloc(sizeof(float) * (cob * p.mv * VL + VL)); /* + VL: see epilogue_channel */
    float *b0 = cs_alloc(sizeof(float) * nb * cob); /* the bias, zeros without one */
    long *toff = cs_alloc(sizeof(long) * nt);
    if (!buf || !wp || !tile || !b0 || !toff) {
        free(buf), free(own), free(tile), free(b0), free(toff);
        return -1;
    }
    memset(buf + s.cin * p.cs, 0, sizeof(float) * slack);
    for (int co = 0; co < nb * cob; co++)
        b0[co] = bias && co < s.cout ? bias[co] : 0.0f;
    forward_offsets(&s, &p, toff);
    if (own)
        pack_weight(w, s.cout, s.cin, nt, own, cob);
    const long hw_out = (long)s.hout * s.wout;
    const float *y_end = y + (long)n * s.cout * hw_out;
    for (int i = 0; i < n; i++) {
        fill_planes(x + (long)i * s.cin * s.h * s.w, &s, &p, buf);
        float *yi = y + (long)i * s.cout * hw_out;
        for (int cb = 0; cb < nb; cb++) {
            const float *wb = wp + (long)cb * s.cin * nt * cob;
            /* the tile's pixels are at oh*wq + ow (a row pitch that is rarely a power of two: the
             * channel-vector tiles' scattered stores straight into y, 64 floats apart on 8x8 maps,
             * ran 3x slower) */
            if (cov)
                cvec_block(buf, p.cs, s.cin, toff, nt, wb, tile, p.mv * VL, s.hout, s.wout, p.wq, cov);
            else
                corr_block(buf, p.cs, s.cin, toff, nt, wb, tile, p.mv * VL, p.mv);
            for (int o = 0; o < cob && cb * cob + o < s.cout; o++) {
                const int co = cb * cob + o;
                float *dst = yi + co * hw_out;
                epilogue(tile + (long)o * p.mv * VL, dst, s.hout, p.wq, s.wout, y_end - dst, b0[co],
                         scale ? scale + co : NULL, shift ? shift + co : NULL, relu);
            }
        }
    }
    free(buf), free(own), free(tile), free(b0), free(toff);
    return 0;
}
