// The merge engine's inner loops (base + Σ λ·Δ in f64, rounded once to the output dtype, with the
// counts merge reports), compiled for AVX-512 and AVX2 from one source of vector-extension code.
// The arithmetic is the portable Swift path's, operation for operation: products and sums rounded
// in f64 separately (no fused multiply-add), so every level writes the same bytes.
#include "ckernels.h"
#include "fill.h"

#include <string.h>

#pragma clang fp contract(off)

#if defined(__x86_64__)

typedef double v8d __attribute__((vector_size(64)));
typedef float v8f __attribute__((vector_size(32)));
typedef uint64_t v8q __attribute__((vector_size(64)));
typedef int64_t v8l __attribute__((vector_size(64)));
typedef uint32_t v8u __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef uint16_t v8h __attribute__((vector_size(16)));

#define INLINE static inline __attribute__((always_inline))

// Loads write through a pointer: vectors returned by value from baseline-target helpers would
// warn about the ABI (they are always inlined, so none is ever passed).
INLINE void load_f32(v8f *v, const void *p) { memcpy(v, p, sizeof *v); }

INLINE void load_delta(v8f *v, const void *p, int bf16, size_t i) {
    if (!bf16) return load_f32(v, (const float *)p + i);
    v8h h;
    memcpy(&h, (const uint16_t *)p + i, sizeof h);
    *v = (v8f)(__builtin_convertvector(h, v8u) << 16);
}

INLINE float scalar_delta(const void *p, int bf16, size_t i) {
    if (!bf16) return ((const float *)p)[i];
    union { uint32_t u; float f; } v = {.u = (uint32_t)((const uint16_t *)p)[i] << 16};
    return v.f;
}

INLINE void accumulate_body(const float *base, size_t n, const void *const *deltas, const int *bf16,
                            const double *scales, size_t terms, double *acc) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v8f b, d;
        load_f32(&b, base + i);
        v8d a = __builtin_convertvector(b, v8d);
        for (size_t k = 0; k < terms; k++) {
            load_delta(&d, deltas[k], bf16[k], i);
            a = a + scales[k] * __builtin_convertvector(d, v8d);
        }
        memcpy(acc + i, &a, sizeof a);
    }
    for (; i < n; i++) {
        double a = (double)base[i];
        for (size_t k = 0; k < terms; k++) a = a + scales[k] * (double)scalar_delta(deltas[k], bf16[k], i);
        acc[i] = a;
    }
}

// Lanes are 0 or all ones; counts subtract them.
INLINE void store_body(const double *acc, const float *base, size_t n, void *out, int out_bf16, int base_bf16,
                       av_merge_counts *counts) {
    v8i changed = {0}, non_finite = {0}, same = {0};
    const v8q abs64 = (v8q){0} + 0x7FFFFFFFFFFFFFFFull;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v8d a;
        memcpy(&a, acc + i, sizeof a);
        v8f bv;
        load_f32(&bv, base + i);
        v8f f = __builtin_convertvector(a, v8f);
        const v8q mag_a = (v8q)a & abs64;
        if (out_bf16) {
            // Round to odd in f32 (toward zero, last bit set when inexact): bf16's rounding below is
            // then the only one.
            const v8q mag_b = (v8q)__builtin_convertvector(f, v8d) & abs64;
            const v8i inexact = __builtin_convertvector((v8l)(mag_a != mag_b), v8i);
            const v8i away = __builtin_convertvector((v8l)(mag_b > mag_a), v8i);
            const v8i nan = __builtin_convertvector((v8l)(mag_a > 0x7FF0000000000000ull), v8i);
            const v8u fix = (v8u)(inexact & ~nan) & 1u;
            f = (v8f)(((v8u)f - ((v8u)away & fix)) | fix);
        }
        const v8i is_changed =
            __builtin_convertvector((v8l)((v8q)a != (v8q)__builtin_convertvector(bv, v8d)), v8i);
        const v8u bits = (v8u)f;
        const v8u base_bits = (v8u)bv;
        const v8i base_inf = (v8i)((base_bits & 0x7F800000u) == 0x7F800000u);
        v8i out_inf, kept;
        if (out_bf16) {
            const v8u rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
            const v8u is_nan = (v8u)((bits & 0x7FFFFFFFu) > 0x7F800000u);
            const v8u ob = (rounded & ~is_nan) | (((bits >> 16) | 0x40u) & is_nan);
            const v8h stored = __builtin_convertvector(ob, v8h);
            memcpy((uint16_t *)out + i, &stored, sizeof stored);
            out_inf = (v8i)((ob & 0x7F80u) == 0x7F80u);
            kept = base_bf16 ? (v8i)(ob == (base_bits >> 16)) : (v8i){0};
        } else {
            memcpy((float *)out + i, &f, sizeof f);
            out_inf = (v8i)((bits & 0x7F800000u) == 0x7F800000u);
            kept = (v8i)(bits == base_bits);
        }
        changed -= is_changed;
        non_finite -= out_inf & ~base_inf;
        same -= is_changed & kept;
    }
    for (int l = 0; l < 8; l++) {
        counts->changed += (uint32_t)changed[l];
        counts->non_finite += (uint32_t)non_finite[l];
        counts->same += (uint32_t)same[l];
    }
    counts->done = i;
}

#define AVX512_MERGE __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))
#define AVX2_MERGE __attribute__((target("avx2,fma")))

AVX512_MERGE static void accumulate_avx512(const float *base, size_t n, const void *const *deltas, const int *bf16,
                                           const double *scales, size_t terms, double *acc) {
    accumulate_body(base, n, deltas, bf16, scales, terms, acc);
}

AVX2_MERGE static void accumulate_avx2(const float *base, size_t n, const void *const *deltas, const int *bf16,
                                       const double *scales, size_t terms, double *acc) {
    accumulate_body(base, n, deltas, bf16, scales, terms, acc);
}

AVX512_MERGE static void store_counted_avx512(const double *acc, const float *base, size_t n, void *out,
                                              int out_bf16, int base_bf16, av_merge_counts *counts) {
    memset(counts, 0, sizeof *counts);
    store_body(acc, base, n, out, out_bf16, base_bf16, counts);
}

AVX2_MERGE static void store_counted_avx2(const double *acc, const float *base, size_t n, void *out, int out_bf16,
                                          int base_bf16, av_merge_counts *counts) {
    memset(counts, 0, sizeof *counts);
    store_body(acc, base, n, out, out_bf16, base_bf16, counts);
}

#endif

void av_fill_merge(av_kernels *table) {
#if defined(__x86_64__)
    if (table->level >= AV_KERNELS_AVX512) {
        table->merge_accumulate = accumulate_avx512;
        table->merge_store = store_counted_avx512;
    } else if (table->level == AV_KERNELS_AVX2) {
        table->merge_accumulate = accumulate_avx2;
        table->merge_store = store_counted_avx2;
    }
#else
    (void)table;
#endif
}
