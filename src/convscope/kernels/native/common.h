/* The vector type shared by the native kernels: GCC/Clang generic vectors, lowered by the
 * compiler to the widest registers of the -march the build chose (AVX-512: 16 floats,
 * AVX/AVX2: 8, otherwise 4: SSE, NEON, or scalar code). */
#ifndef CONVSCOPE_NATIVE_COMMON_H
#define CONVSCOPE_NATIVE_COMMON_H

#include <stdlib.h>

#if defined(__AVX512F__)
#define VL 16
#define CS_ISA "avx512"
#elif defined(__AVX2__) && defined(__FMA__)
#define VL 8
#define CS_ISA "avx2+fma"
#elif defined(__AVX__)
#define VL 8
#define CS_ISA "avx"
#elif defined(__ARM_NEON) || defined(__aarch64__)
#define VL 4
#define CS_ISA "neon"
#elif defined(__SSE2__)
#define VL 4
#define CS_ISA "sse2"
#else
#define VL 4
#define CS_ISA "generic"
#endif

/* unaligned, aliasing-safe vector of VL floats */
typedef float vf __attribute__((vector_size(VL * sizeof(float)), aligned(4), may_alias));

/* 64-byte aligned buffer (a cache line): vector loads from its start do not split lines */
static inline void *cs_alloc(size_t bytes)
{
    return aligned_alloc(64, (bytes + 63) / 64 * 64);
}

static inline vf vzero(void) { return (vf){0}; }
/* s - 0 is s for every float (also -0 and NaN), so this folds to one broadcast */
static inline vf vsplat(float s) { return s - vzero(); }

/* keep a loaded vector in a register: GCC otherwise re-reads it from memory for each
 * multiply-add that uses it (one load per FMA instead of one per tile row) */
#if defined(__x86_64__) && VL == 16
#define KEEP_IN_REGISTER(v) __asm__("" : "+v"(v))
#else
#define KEEP_IN_REGISTER(v) (void)(v)
#endif
/* max(v, 0) as np.maximum(v, 0) computes it: NaN passes through (sign kept), -0.0 becomes
 * +0.0 (batchnorm.c keeps its own copy of the same two lines) */
typedef int cs_vi __attribute__((vector_size(VL * sizeof(int))));
static inline float cs_relu1(float v) { return v > 0.0f || v != v ? v : 0.0f; }
static inline vf cs_relu_v(vf v) { return (vf)((cs_vi)v & ((cs_vi)(v > vzero()) | (cs_vi)(v != v))); }
/* ReLU's gradient g * (y > 0) as NumPy's multiply by the boolean mask gives it: g where the
 * ReLU's output y > 0, else g * 0.0f (-0.0 for a negative g, NaN for a NaN or infinite g) */
static inline float cs_relu_grad1(float g, float y) { return y > 0.0f ? g : g * 0.0f; }
static inline vf cs_relu_grad_v(vf g, vf y)
{
    const cs_vi keep = (cs_vi)(y > vzero());
    return (vf)(((cs_vi)g & keep) | ((cs_vi)(g * vzero()) & ~keep));
}
static inline vf vload(const float *p) { return *(const vf *)p; }
static inline void vstore(float *p, vf v) { *(vf *)p = v; }
static inline float vsum(vf v)
{
    float s = 0.0f;
    for (int i = 0; i < VL; i++)
        s += v[i];
    return s;
}

#endif
