/* The convolution passes over a batch split into chunks of images on the native thread pool
 * (threads.c): one call from Python per pass, whatever the number of chunks. Each chunk runs
 * the serial pass (conv_forward.c, conv_input_grad.c, conv_weight_grad.c) on its images. */
#include <stdlib.h>
#include <string.h>

#include "conv_tiles.h"
#include "threads.h"

int cs_conv2d_forward_fused(const float *x, const float *w, const float *bias, float *y, int n,
                            const int *g, const float *scale, const float *shift, int relu,
                            const float *packed);
int cs_conv2d_backward_input(const float *gy, const float *w, float *dx, int n, const int *g);
int cs_conv2d_backward_weight(const float *x, const float *gy, float *dw, int n, const int *g);

typedef struct {
    const float *x, *w, *bias, *scale, *shift, *packed, *gy;
    float *out;
    const int *g;
    int relu, n, step;
    long wsize;
} conv_job;

static inline long chunks_of(int n, int step) { return (n + step - 1) / step; }
static inline int chunk_end(const conv_job *j, int n0) { return n0 + j->step < j->n ? n0 + j->step : j->n; }
static inline long image_in(const geom_t *s) { return (long)s->cin * s->h * s->w; }
static inline long image_out(const geom_t *s) { return (long)s->cout * s->hout * s->wout; }

static int forward_chunk(void *p, long i)
{
    const conv_job *j = p;
    const geom_t s = make_geom(j->g);
    const int n0 = (int)i * j->step;
    return cs_conv2d_forward_fused(j->x + n0 * image_in(&s), j->w, j->bias, j->out + n0 * image_out(&s),
                                   chunk_end(j, n0) - n0, j->g, j->scale, j->shift, j->relu, j->packed);
}

/* cs_conv2d_forward_fused over n images in chunks of `step` on `threads` threads */
int cs_conv2d_forward_parallel(const float *x, const float *w, const float *bias, float *y, int n,
                               const int *g, const float *scale, const float *shift, int relu,
                               const float *packed, int step, int threads)
{
    conv_job j = {x, w, bias, scale, shift, packed, NULL, y, g, relu, n, step, 0};
    return cs_parallel_for(chunks_of(n, step), threads, forward_chunk, &j);
}

static int input_chunk(void *p, long i)
{
    const conv_job *j = p;
    const geom_t s = make_geom(j->g);
    const int n0 = (int)i * j->step;
    return cs_conv2d_backward_input(j->gy + n0 * image_out(&s), j->w, j->out + n0 * image_in(&s),
                                    chunk_end(j, n0) - n0, j->g);
}

/* cs_conv2d_backward_input over n images in chunks of `step` on `threads` threads */
int cs_conv2d_backward_input_parallel(const float *gy, const float *w, float *dx, int n, const int *g,
                                      int step, int threads)
{
    conv_job j = {NULL, w, NULL, NULL, NULL, NULL, gy, dx, g, 0, n, step, 0};
    return cs_parallel_for(chunks_of(n, step), threads, input_chunk, &j);
}

static int weight_chunk(void *p, long i)
{
    const conv_job *j = p;
    const geom_t s = make_geom(j->g);
    const int n0 = (int)i * j->step;
    return cs_conv2d_backward_weight(j->x + n0 * image_in(&s), j->gy + n0 * image_out(&s),
                                     j->out + i * j->wsize, chunk_end(j, n0) - n0, j->g);
}

/* dw = the weight gradient of n images: each chunk of `step` images sums into its own zeroed
 * part, and the parts are added in chunk order (the result does not depend on the threads) */
int cs_conv2d_backward_weight_parallel(const float *x, const float *gy, float *dw, int n, const int *g,
                                       int step, int threads)
{
    const geom_t s = make_geom(g);
    const long wsize = (long)s.cout * s.cin * s.kh * s.kw, nchunks = chunks_of(n, step);
    float *parts = calloc((size_t)(nchunks * wsize), sizeof(float));
    if (!parts)
        return -1;
    conv_job j = {x, NULL, NULL, NULL, NULL, NULL, gy, parts, g, 0, n, step, wsize};
    const int err = cs_parallel_for(nchunks, threads, weight_chunk, &j);
    if (!err) {
        memcpy(dw, parts, sizeof(float) * wsize);
        for (long c = 1; c < nchunks; c++) {
            const float *part = parts + c * wsize;
            for (long k = 0; k < wsize; k++)
                dw[k] += part[k];
        }
    }
    free(parts);
    return err;
}
