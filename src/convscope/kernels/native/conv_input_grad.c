/* Direct 2-D convolution, input gradient (the method: conv_tiles.h). */
#include <stdlib.h>
#include <string.h>

#include "conv_tiles.h"

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
