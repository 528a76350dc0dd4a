// Prefill with bf16 weights on AVX-512's bf16 dot product (vdpbf16ps: 32 products per instruction,
// twice an f32 FMA's). The activations are split into two bf16 parts, hi + lo, so the products keep
// 16 bits of each activation where rounding it to bf16 alone (llama.cpp's way) keeps 8.
#include "ckernels.h"

size_t av_bf16_split_stride(size_t cols) { return 2 * ((cols + 31) / 32 * 32); }

#if defined(__x86_64__)
#include <immintrin.h>

#include "tiles.h"

#define AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

AVX512BF16 static void split_bf16(const float *x, size_t tokens, size_t cols, uint16_t *out) {
    const size_t half = av_bf16_split_stride(cols) / 2;
    for (size_t t = 0; t < tokens; t++) {
        const float *row = x + t * cols;
        uint16_t *hi = out + t * 2 * half, *lo = hi + half;
        for (size_t i = 0; i < half; i += 16) {
            const size_t left = i < cols ? cols - i : 0;
            const __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
            const __m512 v = _mm512_maskz_loadu_ps(m, row + i);
            const __m256bh h = _mm512_cvtneps_pbh(v);
            const __m512 back = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32((__m256i)h), 16));
            const __m256bh l = _mm512_cvtneps_pbh(_mm512_sub_ps(v, back));
            _mm256_storeu_si256((__m256i *)(hi + i), (__m256i)h);
            _mm256_storeu_si256((__m256i *)(lo + i), (__m256i)l);
        }
    }
}

// One step of 32 columns of a tile: whole steps with plain weight loads (the constant mask folds
// away), the tail masked (the split activations are zero-padded, so they need no mask); the same
// products in the same order either way.
#define DOT_STEP(HI_ONLY, I, M)                                                                                     \
    {                                                                                                                \
        __m512bh wv[4];                                                                                              \
        for (size_t a = 0; a < 4; a++) wv[a] = (__m512bh)_mm512_maskz_loadu_epi16(M, wr[a] + (I));                   \
        for (size_t b = 0; b < 6; b++) {                                                                             \
            const __m512bh xh = (__m512bh)_mm512_loadu_si512(xt[b] + (I));                                           \
            for (size_t a = 0; a < 4; a++) acc[a][b] = _mm512_dpbf16_ps(acc[a][b], wv[a], xh);                       \
            if (!HI_ONLY) {                                                                                          \
                const __m512bh xl = (__m512bh)_mm512_loadu_si512(xt[b] + half + (I));                                \
                for (size_t a = 0; a < 4; a++) acc[a][b] = _mm512_dpbf16_ps(acc[a][b], wv[a], xl);                   \
            }                                                                                                        \
        }                                                                                                            \
    }

// Tiles of 4 rows × 6 tokens, 24 accumulators.
#define DOT_TILE(NAME, HI_ONLY)                                                                                     \
    AVX512BF16 static void NAME(const uint16_t *w, size_t rows, size_t cols, const uint16_t *xs, size_t tokens,     \
                                float *y, size_t ys) {                                                               \
        const size_t stride = av_bf16_split_stride(cols), half = stride / 2;                                         \
        const size_t full = cols / 32 * 32;                                                                          \
        const __mmask32 tail = (__mmask32)((1ull << (cols - full)) - 1);                                             \
        for (size_t r0 = 0; r0 < rows; r0 += 4) {                                                                    \
            const size_t nr = rows - r0 < 4 ? rows - r0 : 4;                                                         \
            const uint16_t *wr[4];                                                                                   \
            for (size_t a = 0; a < 4; a++) wr[a] = w + (r0 + (a < nr ? a : 0)) * cols;                               \
            for (size_t t0 = 0; t0 < tokens; t0 += 6) {                                                              \
                const size_t nt = tokens - t0 < 6 ? tokens - t0 : 6;                                                 \
                const uint16_t *xt[6];                                                                               \
                for (size_t b = 0; b < 6; b++) xt[b] = xs + (t0 + (b < nt ? b : 0)) * stride;                        \
                __m512 acc[4][6];                                                                                    \
                for (size_t a = 0; a < 4; a++)                                                                       \
                    for (size_t b = 0; b < 6; b++) acc[a][b] = _mm512_setzero_ps();                                  \
                for (size_t i = 0; i < full; i += 32) DOT_STEP(HI_ONLY, i, (__mmask32)0xFFFFFFFF)                  \
                if (full < cols) DOT_STEP(HI_ONLY, full, tail)                                                       \
                av_store_tile(acc, nr, nt, y + t0 * ys + r0, ys);                                                    \
            }                                                                                                        \
        }                                                                                                            \
    }

DOT_TILE(dot_split, 0)
DOT_TILE(dot_hi_only, 1)

int av_bf16_split(int level, const float *x, size_t tokens, size_t cols, uint16_t *out) {
    if (level < AV_KERNELS_AVX512_BF16) return 0;
    split_bf16(x, tokens, cols, out);
    return 1;
}

int av_matmul_bf16_split(int level, const uint16_t *w, size_t rows, size_t cols, const uint16_t *xs, size_t tokens,
                         float *y, size_t y_stride, int hi_only) {
    if (level < AV_KERNELS_AVX512_BF16) return 0;
    if (hi_only) dot_hi_only(w, rows, cols, xs, tokens, y, y_stride);
    else dot_split(w, rows, cols, xs, tokens, y, y_stride);
    return 1;
}

#else

int av_bf16_split(int level, const float *x, size_t tokens, size_t cols, uint16_t *out) {
    (void)level, (void)x, (void)tokens, (void)cols, (void)out;
    return 0;
}

int av_matmul_bf16_split(int level, const uint16_t *w, size_t rows, size_t cols, const uint16_t *xs, size_t tokens,
                         float *y, size_t y_stride, int hi_only) {
    (void)level, (void)w, (void)rows, (void)cols, (void)xs, (void)tokens, (void)y, (void)y_stride, (void)hi_only;
    return 0;
}

#endif
