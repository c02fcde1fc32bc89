/* convscope's native thread pool: cs_parallel_for runs a job's chunks on the calling thread and
 * up to threads - 1 pool workers, with no Python (and no GIL) between chunks.
 *
 * Why in C: a hand-off to Python worker threads costs 50-100 us here (waking a sleeping thread,
 * then passing the GIL back and forth); a ResNet-20 training step makes about 60 threaded
 * convolution calls. Workers here spin for a bounded time after each job (CS_SPIN_NS, or
 * CONVSCOPE_SPIN_US), so the next layer's job finds them awake, and then sleep on a condition
 * variable: an idle pool uses no CPU, and on a busy machine a worker wastes at most one spin.
 *
 * Chunks are claimed dynamically (an atomic counter): a descheduled worker holds nobody up, and
 * a job's result cannot depend on which thread ran which chunk (each chunk writes its own part).
 *
 * Job protocol (one job at a time; a call while another runs, e.g. from a second Python thread,
 * runs its chunks inline). `state` packs the job's generation (high 32 bits), a CLOSED bit and
 * the number of workers inside the job. A worker enters by incrementing the count while the job
 * is open and its generation is the one it saw; the caller, once every chunk is claimed, closes
 * the job and waits for the count to reach 0. So no worker touches a job after its call
 * returns, and late workers skip it. A new job is published only when no worker is inside
 * the previous one (which stays closed).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "threads.h"

#define MAX_WORKERS 63
#define CLOSED (1L << 31)
#define COUNT_MASK (CLOSED - 1)
#define CS_SPIN_NS 500000L

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int started;          /* workers running */
    atomic_int wanted;    /* workers that may enter jobs (threads - 1 of the current call) */
    atomic_long state;    /* generation << 32 | CLOSED | workers inside */
    atomic_long next;     /* next chunk to claim */
    atomic_int error;     /* first nonzero chunk result */
    atomic_int busy;      /* a job is running */
    atomic_int sleepers;  /* workers waiting on `wake` */
    long nchunks;
    cs_chunk_fn fn;
    void *job;
    long spin_ns;
} P = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER, .state = CLOSED};
/* (generation 0 is closed: no job has run yet) */

static inline void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static void claim_chunks(void)
{
    for (;;) {
        const long i = atomic_fetch_add(&P.next, 1);
        if (i >= P.nchunks)
            return;
        const int err = P.fn(P.job, i);
        if (err) {
            int none = 0;
            atomic_compare_exchange_strong(&P.error, &none, err);
        }
    }
}

/* enter job `gen` if it is still open: 1 if entered */
static int enter(long gen)
{
    long s = atomic_load(&P.state);
    while ((s >> 32) == gen && !(s & CLOSED))
        if (atomic_compare_exchange_weak(&P.state, &s, s + 1))
            return 1;
    return 0;
}

static void *worker(void *arg)
{
    const int index = (int)(long)arg;
    long seen = -1; /* so a job published while this thread was starting is not missed */
    for (;;) {
        /* wait for a new generation: spin, then sleep */
        const long t0 = now_ns();
        long gen = atomic_load(&P.state) >> 32;
        while (gen == seen) {
            for (int k = 0; k < 64 && gen == seen; k++) {
                relax();
                gen = atomic_load(&P.state) >> 32;
            }
            if (gen == seen && now_ns() - t0 > P.spin_ns) {
                pthread_mutex_lock(&P.lock);
                atomic_fetch_add(&P.sleepers, 1);
                while ((gen = atomic_load(&P.state) >> 32) == seen)
                    pthread_cond_wait(&P.wake, &P.lock);
                atomic_fetch_sub(&P.sleepers, 1);
                pthread_mutex_unlock(&P.lock);
            }
        }
        seen = gen;
        if (index < atomic_load(&P.wanted) && enter(gen)) {
            claim_chunks();
            atomic_fetch_sub(&P.state, 1);
        }
    }
    return NULL;
}

static void reset_after_fork(void)
{
    /* the child has no workers: start afresh (the parent's lock may have been held) */
    pthread_mutex_init(&P.lock, NULL);
    pthread_cond_init(&P.wake, NULL);
    P.started = 0;
    atomic_store(&P.busy, 0);
    atomic_store(&P.sleepers, 0);
    atomic_store(&P.state, CLOSED);
}

/* start workers up to `count` (the caller holds P.lock); the number running */
static int grow(int count)
{
    static int registered = 0;
    if (!registered) {
        pthread_atfork(NULL, NULL, reset_after_fork);
        const char *env = getenv("CONVSCOPE_SPIN_US");
        P.spin_ns = env ? atol(env) * 1000L : CS_SPIN_NS;
        registered = 1;
    }
    while (P.started < count) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        const int rc = pthread_create(&t, &attr, worker, (void *)(long)P.started);
        pthread_attr_destroy(&attr);
        if (rc)
            break;
        P.started++;
    }
    return P.started;
}

int cs_parallel_for(long nchunks, int threads, cs_chunk_fn fn, void *job)
{
    int workers = threads - 1 < MAX_WORKERS ? threads - 1 : MAX_WORKERS;
    int idle = 0;
    if (nchunks < 2 || workers < 1 || !atomic_compare_exchange_strong(&P.busy, &idle, 1)) {
        int err = 0;
        for (long i = 0; i < nchunks && !err; i++)
            err = fn(job, i);
        return err;
    }
    if (P.started < workers) {
        pthread_mutex_lock(&P.lock);
        workers = grow(workers);
        pthread_mutex_unlock(&P.lock);
    }
    /* publish the job, then open it under a new generation */
    P.fn = fn;
    P.job = job;
    P.nchunks = nchunks;
    atomic_store(&P.next, 0);
    atomic_store(&P.error, 0);
    atomic_store(&P.wanted, workers);
    const long gen = (atomic_load(&P.state) >> 32) + 1;
    atomic_store(&P.state, (gen & 0x7fffffffL) << 32);
    if (atomic_load(&P.sleepers)) {
        pthread_mutex_lock(&P.lock);
        pthread_cond_broadcast(&P.wake);
        pthread_mutex_unlock(&P.lock);
    }
    claim_chunks();
    /* every chunk is claimed: close the job, then wait for the workers inside it */
    atomic_fetch_or(&P.state, CLOSED);
    while (atomic_load(&P.state) & COUNT_MASK)
        relax();
    const int err = atomic_load(&P.error);
    atomic_store(&P.busy, 0);
    return err;
}
