/* Direct 2-D convolution, forward pass (the method: conv_tiles.h). */
#include <stdlib.h>
#include <string.h>

#include "conv_tiles.h"

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
