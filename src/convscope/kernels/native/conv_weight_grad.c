/* Direct 2-D convolution, weight gradient (the method: conv_tiles.h). */
#include <stdlib.h>
#include <string.h>

#include "conv_tiles.h"

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
