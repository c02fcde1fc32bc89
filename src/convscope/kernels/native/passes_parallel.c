/* The memory-bound passes (batch norm, ReLU, residual add + ReLU, pooling) over chunks on the
 * native thread pool (threads.c): one call from Python per pass. A chunk is a range of units -
 * images for batch norm and add + ReLU, (image, channel) planes for pooling, floats for ReLU -
 * and runs the serial pass of batchnorm.c, elementwise.c or pool.c on them. Sums are taken per
 * chunk into the job's zeroed parts (nchunks x C) and added by the caller in chunk order, so the
 * result does not depend on which thread ran which chunk. */
#include <stdint.h>
#include <stdlib.h>

#include "threads.h"

void cs_bn_stats(const float *x, int n, int c, long l, const float *m, double *s1, double *s2);
void cs_bn_apply(const float *x, float *out, int n, int c, long l, const float *m, const float *a,
                 const float *b);
void cs_bn_apply_relu(const float *x, float *out, int n, int c, long l, const float *m,
                      const float *a, const float *b);
void cs_bn_backward_sums(const float *g, const float *x, const float *y, int n, int c, long l,
                         const float *mean, double *sg, double *sgd, double *sd);
void cs_bn_backward_input(const float *g, const float *x, const float *y, float *dx, int n, int c,
                          long l, const float *mean, const float *s, const float *k, const float *b);
void cs_channel_sums(const float *a, int n, int c, long l, double *s);
void cs_add_relu(const float *p, const float *q, float *out, long len);
void cs_relu_forward(const float *x, float *out, long len);
void cs_relu_backward(const float *g, const float *out, float *gx, long len);
void cs_max_pool2d_forward(const float *x, float *y, int64_t *idx, long planes, const int *g, int hout,
                           int wout);
void cs_max_pool2d_backward(const float *gy, const int64_t *idx, float *dx, long planes, long in,
                            long out);
void cs_avg_pool2d_forward(const float *x, float *y, const float *div, long planes, const int *g,
                           int hout, int wout);
void cs_avg_pool2d_backward(const float *gy, const float *div, float *dx, float *share, long planes,
                            const int *g, int hout, int wout);

/* the passes, by the number Python gives (convscope/kernels/native/_passes.py: PASS_KINDS) */
enum {
    BN_STATS,
    BN_APPLY,
    BN_APPLY_RELU,
    BN_BACKWARD_SUMS,
    BN_BACKWARD_INPUT,
    CHANNEL_SUMS,
    ADD_RELU,
    RELU_FORWARD,
    RELU_BACKWARD,
    MAX_POOL_FORWARD,
    MAX_POOL_BACKWARD,
    AVG_POOL_FORWARD,
    AVG_POOL_BACKWARD,
};

/* one pass; its layout mirrors PassJob in _passes.py */
typedef struct {
    long kind, count, step; /* units, units per chunk */
    long c, l, l_out;       /* channels per image; floats per row (per input plane); per output plane */
    const float *a, *b, *y; /* inputs (y: a fused ReLU's output, or NULL) */
    float *out;
    int64_t *idx;
    const float *m, *s, *k, *t; /* per-channel vectors (pooling: t = the divisors) */
    double *p1, *p2, *p3;       /* per-chunk sums, nchunks x c, zeroed */
    const int *g;               /* pooling geometry */
    long hout, wout;
} pass_job;

static int pass_chunk(void *p, long i)
{
    const pass_job *j = p;
    const long u0 = i * j->step, cnt = (u0 + j->step < j->count ? u0 + j->step : j->count) - u0;
    const int c = (int)j->c, n = (int)cnt;
    const long img = j->c * j->l, off = u0 * img;
    double *q1 = j->p1 ? j->p1 + i * j->c : NULL, *q2 = j->p2 ? j->p2 + i * j->c : NULL,
           *q3 = j->p3 ? j->p3 + i * j->c : NULL;
    const float *y = j->y ? j->y + off : NULL;
    switch (j->kind) {
    case BN_STATS:
        cs_bn_stats(j->a + off, n, c, j->l, j->m, q1, q2);
        return 0;
    case BN_APPLY:
        cs_bn_apply(j->a + off, j->out + off, n, c, j->l, j->m, j->s, j->t);
        return 0;
    case BN_APPLY_RELU:
        cs_bn_apply_relu(j->a + off, j->out + off, n, c, j->l, j->m, j->s, j->t);
        return 0;
    case BN_BACKWARD_SUMS:
        cs_bn_backward_sums(j->a + off, j->b + off, y, n, c, j->l, j->m, q1, q2, q3);
        return 0;
    case BN_BACKWARD_INPUT:
        cs_bn_backward_input(j->a + off, j->b + off, y, j->out + off, n, c, j->l, j->m, j->s, j->k, j->t);
        return 0;
    case CHANNEL_SUMS:
        cs_channel_sums(j->a + off, n, c, j->l, q1);
        return 0;
    case ADD_RELU:
        cs_add_relu(j->a + off, j->b + off, j->out + off, cnt * img);
        return 0;
    case RELU_FORWARD:
        cs_relu_forward(j->a + off, j->out + off, cnt * img);
        return 0;
    case RELU_BACKWARD:
        cs_relu_backward(j->a + off, j->y + off, j->out + off, cnt * img);
        return 0;
    case MAX_POOL_FORWARD:
        cs_max_pool2d_forward(j->a + u0 * j->l, j->out + u0 * j->l_out, j->idx ? j->idx + u0 * j->l_out : NULL,
                              cnt, j->g, (int)j->hout, (int)j->wout);
        return 0;
    case MAX_POOL_BACKWARD:
        cs_max_pool2d_backward(j->a + u0 * j->l_out, j->idx + u0 * j->l_out, j->out + u0 * j->l, cnt, j->l,
                               j->l_out);
        return 0;
    case AVG_POOL_FORWARD:
        cs_avg_pool2d_forward(j->a + u0 * j->l, j->out + u0 * j->l_out, j->t, cnt, j->g, (int)j->hout,
                              (int)j->wout);
        return 0;
    case AVG_POOL_BACKWARD: {
        float *share = malloc(sizeof(float) * (j->l_out > 0 ? j->l_out : 1));
        if (!share)
            return -1;
        cs_avg_pool2d_backward(j->a + u0 * j->l_out, j->t, j->out + u0 * j->l, share, cnt, j->g,
                               (int)j->hout, (int)j->wout);
        free(share);
        return 0;
    }
    default:
        return -2;
    }
}

/* runs pass job->kind over job->count units in chunks of job->step on `threads` threads;
 * 0, -1 (out of memory) or -2 (unknown kind) */
int cs_pass_parallel(const pass_job *job, int threads)
{
    const long nchunks = job->count > 0 ? (job->count + job->step - 1) / job->step : 0;
    return cs_parallel_for(nchunks, threads, pass_chunk, (void *)job);
}
