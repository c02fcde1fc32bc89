/* convscope's native thread pool: a parallel loop over chunks, run entirely in C (see threads.c). */
#ifndef CONVSCOPE_THREADS_H
#define CONVSCOPE_THREADS_H

/* one chunk of a job: returns 0, or nonzero for an error (out of memory) */
typedef int (*cs_chunk_fn)(void *job, long chunk);

/* Runs fn(job, i) for i in [0, nchunks) on up to `threads` threads (the caller and threads - 1
 * pool workers); returns 0, or the first nonzero chunk result. */
__attribute__((visibility("hidden"))) int cs_parallel_for(long nchunks, int threads, cs_chunk_fn fn,
                                                          void *job);

#endif
