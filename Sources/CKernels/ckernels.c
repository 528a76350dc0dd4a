#include "ckernels.h"

#include <string.h>

#include "fill.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include "tiles.h"

int av_kernels_detect(void) {
    __builtin_cpu_init();
    // Every feature a variant is compiled for (target attributes across the kernel files): F, BW,
    // VL and DQ with FMA for the AVX-512 level, and BF16 besides for its bf16 products. A CPU with
    // F and BW but not VL or DQ runs the AVX2 kernels rather than an illegal instruction.
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma")) {
        return __builtin_cpu_supports("avx512bf16") ? AV_KERNELS_AVX512_BF16 : AV_KERNELS_AVX512;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return AV_KERNELS_AVX2;
    return AV_KERNELS_PORTABLE;
}

// ---- AVX-512: tiles of 4 rows × 6 tokens, 24 accumulators of 16 lanes; masked tail. ----

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))

AVX512 static inline __m512 load_w_f32(const void *w, size_t i, __mmask16 m) {
    return _mm512_maskz_loadu_ps(m, (const float *)w + i);
}

AVX512 static inline __m512 load_w_bf16(const void *w, size_t i, __mmask16 m) {
    __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)w + i);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// One step of 16 columns of a 4-row × 6-token tile: whole steps with plain loads (the constant
// mask folds away), the tail masked; the same multiply-adds in the same order either way.
#define TILE512_STEP(LOAD, I, M)                                                                                    \
    {                                                                                                                \
        __m512 wv[4];                                                                                                \
        for (size_t a = 0; a < 4; a++) wv[a] = LOAD(wr[a], I, M);                                                    \
        for (size_t b = 0; b < 6; b++) {                                                                             \
            const __m512 xv = _mm512_maskz_loadu_ps(M, xt[b] + (I));                                                 \
            for (size_t a = 0; a < 4; a++) acc[a][b] = _mm512_fmadd_ps(wv[a], xv, acc[a][b]);                        \
        }                                                                                                            \
    }

#define TILE512(NAME, LOAD, WTYPE, WSIZE)                                                                           \
    AVX512 static void NAME(const WTYPE *w, size_t rows, size_t cols, const float *x, size_t tokens, float *y,       \
                            size_t ys) {                                                                             \
        const size_t full = cols / 16 * 16;                                                                          \
        const __mmask16 tail = (__mmask16)((1u << (cols - full)) - 1);                                               \
        for (size_t r0 = 0; r0 < rows; r0 += 4) {                                                                    \
            const size_t nr = rows - r0 < 4 ? rows - r0 : 4;                                                         \
            const void *wr[4];                                                                                       \
            for (size_t a = 0; a < 4; a++) wr[a] = (const char *)w + (r0 + (a < nr ? a : 0)) * cols * WSIZE;        \
            for (size_t t0 = 0; t0 < tokens; t0 += 6) {                                                              \
                const size_t nt = tokens - t0 < 6 ? tokens - t0 : 6;                                                 \
                const float *xt[6];                                                                                  \
                for (size_t b = 0; b < 6; b++) xt[b] = x + (t0 + (b < nt ? b : 0)) * cols;                           \
                __m512 acc[4][6];                                                                                    \
                for (size_t a = 0; a < 4; a++)                                                                       \
                    for (size_t b = 0; b < 6; b++) acc[a][b] = _mm512_setzero_ps();                                  \
                for (size_t i = 0; i < full; i += 16) TILE512_STEP(LOAD, i, (__mmask16)0xFFFF)                     \
                if (tail) TILE512_STEP(LOAD, full, tail)                                                             \
                av_store_tile(acc, nr, nt, y + t0 * ys + r0, ys);                                                    \
            }                                                                                                        \
        }                                                                                                            \
    }

TILE512(matmul_f32_avx512, load_w_f32, float, 4)
TILE512(matmul_bf16_avx512, load_w_bf16, uint16_t, 2)

// How far ahead of its loads a decode product asks for its weights, in elements (4 KiB of a bf16
// row; past a row's end, the next row's start): one core's hardware prefetcher alone keeps too few
// requests in flight to stream a large model at the memory's speed (Benchmarks/README.md, "7B").
#ifndef AV_GEMV_AHEAD
#define AV_GEMV_AHEAD 2048
#endif
// One vector (decode): memory-bound, so each row streams alone (interleaved rows defeat the
// prefetcher here) through four accumulators, prefetching AV_GEMV_AHEAD elements ahead.
#define GEMV512(NAME, LOAD, WTYPE, WSIZE)                                                                           \
    AVX512 static void NAME(const WTYPE *w, size_t rows, size_t cols, const float *x, float *y) {                    \
        const size_t full = cols / 16 * 16;                                                                          \
        const __mmask16 tail = (__mmask16)((1u << (cols - full)) - 1);                                               \
        for (size_t r = 0; r < rows; r++) {                                                                          \
            const void *wr = (const char *)w + r * cols * WSIZE;                                                     \
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                                              \
            size_t i = 0;                                                                                            \
            for (; i + 64 <= full; i += 64) {                                                                        \
                for (size_t p = 0; p < 64 * WSIZE; p += 64)                                                          \
                    _mm_prefetch((const char *)wr + (i + AV_GEMV_AHEAD) * WSIZE + p, _MM_HINT_T0);                    \
                a0 = _mm512_fmadd_ps(LOAD(wr, i, 0xFFFF), _mm512_loadu_ps(x + i), a0);                               \
                a1 = _mm512_fmadd_ps(LOAD(wr, i + 16, 0xFFFF), _mm512_loadu_ps(x + i + 16), a1);                     \
                a2 = _mm512_fmadd_ps(LOAD(wr, i + 32, 0xFFFF), _mm512_loadu_ps(x + i + 32), a2);                     \
                a3 = _mm512_fmadd_ps(LOAD(wr, i + 48, 0xFFFF), _mm512_loadu_ps(x + i + 48), a3);                     \
            }                                                                                                        \
            for (; i <= full; i += 16) {                                                                             \
                const __mmask16 m = i < full ? (__mmask16)0xFFFF : tail;                                             \
                if (!m) break;                                                                                       \
                a0 = _mm512_fmadd_ps(LOAD(wr, i, m), _mm512_maskz_loadu_ps(m, x + i), a0);                           \
            }                                                                                                        \
            y[r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));                \
        }                                                                                                            \
    }

GEMV512(gemv_f32_avx512, load_w_f32, float, 4)
GEMV512(gemv_bf16_avx512, load_w_bf16, uint16_t, 2)

// ---- AVX2 + FMA: tiles of 4 rows × 2 tokens, 8 accumulators of 8 lanes; scalar tail. ----

#define AVX2 __attribute__((target("avx2,fma")))

AVX2 static inline __m256 load8_f32(const void *w, size_t i) { return _mm256_loadu_ps((const float *)w + i); }

AVX2 static inline __m256 load8_bf16(const void *w, size_t i) {
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

static inline float scalar_f32(const void *w, size_t i) { return ((const float *)w)[i]; }

static inline float scalar_bf16(const void *w, size_t i) {
    union { uint32_t u; float f; } v = {.u = (uint32_t)((const uint16_t *)w)[i] << 16};
    return v.f;
}

AVX2 static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

#define TILE256(NAME, LOAD, SCALAR, WTYPE, WSIZE)                                                                   \
    AVX2 static void NAME(const WTYPE *w, size_t rows, size_t cols, const float *x, size_t tokens, float *y,         \
                          size_t ys) {                                                                               \
        const size_t full = cols / 8 * 8;                                                                            \
        for (size_t r0 = 0; r0 < rows; r0 += 4) {                                                                    \
            const size_t nr = rows - r0 < 4 ? rows - r0 : 4;                                                         \
            const void *wr[4];                                                                                       \
            for (size_t a = 0; a < 4; a++) wr[a] = (const char *)w + (r0 + (a < nr ? a : 0)) * cols * WSIZE;        \
            for (size_t t0 = 0; t0 < tokens; t0 += 2) {                                                              \
                const size_t nt = tokens - t0 < 2 ? tokens - t0 : 2;                                                 \
                const float *xt[2] = {x + t0 * cols, x + (t0 + (nt > 1 ? 1 : 0)) * cols};                           \
                __m256 acc[4][2];                                                                                    \
                for (size_t a = 0; a < 4; a++) acc[a][0] = acc[a][1] = _mm256_setzero_ps();                          \
                for (size_t i = 0; i < full; i += 8) {                                                               \
                    const __m256 x0 = _mm256_loadu_ps(xt[0] + i), x1 = _mm256_loadu_ps(xt[1] + i);                   \
                    for (size_t a = 0; a < 4; a++) {                                                                 \
                        const __m256 wv = LOAD(wr[a], i);                                                            \
                        acc[a][0] = _mm256_fmadd_ps(wv, x0, acc[a][0]);                                              \
                        acc[a][1] = _mm256_fmadd_ps(wv, x1, acc[a][1]);                                              \
                    }                                                                                                \
                }                                                                                                    \
                for (size_t a = 0; a < nr; a++)                                                                      \
                    for (size_t b = 0; b < nt; b++) {                                                                \
                        float s = hsum256(acc[a][b]);                                                                \
                        for (size_t i = full; i < cols; i++) s = __builtin_fmaf(SCALAR(wr[a], i), xt[b][i], s);      \
                        y[(t0 + b) * ys + r0 + a] = s;                                                               \
                    }                                                                                                \
            }                                                                                                        \
        }                                                                                                            \
    }

TILE256(matmul_f32_avx2, load8_f32, scalar_f32, float, 4)
TILE256(matmul_bf16_avx2, load8_bf16, scalar_bf16, uint16_t, 2)

#define GEMV256(NAME, LOAD, SCALAR, WTYPE, WSIZE)                                                                   \
    AVX2 static void NAME(const WTYPE *w, size_t rows, size_t cols, const float *x, float *y) {                      \
        const size_t full = cols / 8 * 8;                                                                            \
        for (size_t r = 0; r < rows; r++) {                                                                          \
            const void *wr = (const char *)w + r * cols * WSIZE;                                                     \
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                                              \
            size_t i = 0;                                                                                            \
            for (; i + 32 <= full; i += 32) {                                                                        \
                for (size_t p = 0; p < 32 * WSIZE; p += 64)                                                          \
                    _mm_prefetch((const char *)wr + (i + AV_GEMV_AHEAD) * WSIZE + p, _MM_HINT_T0);                    \
                a0 = _mm256_fmadd_ps(LOAD(wr, i), _mm256_loadu_ps(x + i), a0);                                       \
                a1 = _mm256_fmadd_ps(LOAD(wr, i + 8), _mm256_loadu_ps(x + i + 8), a1);                               \
                a2 = _mm256_fmadd_ps(LOAD(wr, i + 16), _mm256_loadu_ps(x + i + 16), a2);                             \
                a3 = _mm256_fmadd_ps(LOAD(wr, i + 24), _mm256_loadu_ps(x + i + 24), a3);                             \
            }                                                                                                        \
            for (; i < full; i += 8) a0 = _mm256_fmadd_ps(LOAD(wr, i), _mm256_loadu_ps(x + i), a0);                  \
            float s = hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));                          \
            for (size_t k = full; k < cols; k++) s = __builtin_fmaf(SCALAR(wr, k), x[k], s);                         \
            y[r] = s;                                                                                                \
        }                                                                                                            \
    }

GEMV256(gemv_f32_avx2, load8_f32, scalar_f32, float, 4)
GEMV256(gemv_bf16_avx2, load8_bf16, scalar_bf16, uint16_t, 2)

// One entry per level and dtype: a vector streams its rows alone (decode), more tokens go in tiles.
#define MATMUL_ENTRY(NAME, WTYPE, GEMV, TILE)                                                                       \
    static void NAME(const WTYPE *w, size_t rows, size_t cols, const float *x, size_t tokens, float *y, size_t ys) { \
        if (tokens == 1) GEMV(w, rows, cols, x, y);                                                                  \
        else TILE(w, rows, cols, x, tokens, y, ys);                                                                  \
    }

MATMUL_ENTRY(matmul_f32_512, float, gemv_f32_avx512, matmul_f32_avx512)
MATMUL_ENTRY(matmul_bf16_512, uint16_t, gemv_bf16_avx512, matmul_bf16_avx512)
MATMUL_ENTRY(matmul_f32_256, float, gemv_f32_avx2, matmul_f32_avx2)
MATMUL_ENTRY(matmul_bf16_256, uint16_t, gemv_bf16_avx2, matmul_bf16_avx2)

#else

int av_kernels_detect(void) { return AV_KERNELS_PORTABLE; }

#endif

void av_fill_matmul(av_kernels *table) {
#if defined(__x86_64__)
    if (table->level >= AV_KERNELS_AVX512) {
        table->matmul_f32 = matmul_f32_512;
        table->matmul_bf16 = matmul_bf16_512;
    } else if (table->level == AV_KERNELS_AVX2) {
        table->matmul_f32 = matmul_f32_256;
        table->matmul_bf16 = matmul_bf16_256;
    }
#else
    (void)table;
#endif
}

void av_kernels_fill(int level, av_kernels *table) {
    memset(table, 0, sizeof *table);
    table->level = level;
    av_fill_matmul(table);
    av_fill_activations(table);
    av_fill_merge(table);
    av_fill_panels(table);
    av_fill_attention(table);
}
