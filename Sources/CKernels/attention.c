// One query's attention over a run of cached positions, for the AVX-512 levels: scores four keys
// at a time (one folded reduction for the four), softmax with libm's expf, then the weighted sum of
// the values in registers.
#include "ckernels.h"

#include <math.h>

#if defined(__x86_64__)
#include <immintrin.h>

#include "tiles.h"

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))

AVX512 static void attend512(const float *q, const float *keys, const float *values, size_t stride, size_t n,
                             size_t d, float scale, float *scores, float *out) {
    const size_t full = d / 16 * 16;
    const __mmask16 tail = (__mmask16)((1u << (d - full)) - 1);
    float best = -INFINITY;
    for (size_t p = 0; p < n; p += 4) {
        const size_t m = n - p < 4 ? n - p : 4;
        __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
        const float *k[4];
        for (size_t a = 0; a < 4; a++) k[a] = keys + (p + (a < m ? a : 0)) * stride;
        for (size_t i = 0; i <= full; i += 16) {
            const __mmask16 mask = i < full ? (__mmask16)0xFFFF : tail;
            if (!mask) break;
            const __m512 qv = _mm512_maskz_loadu_ps(mask, q + i);
            for (size_t a = 0; a < 4; a++) acc[a] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, k[a] + i), qv, acc[a]);
        }
        const __m128 s = _mm_mul_ps(av_reduce4(acc[0], acc[1], acc[2], acc[3]), _mm_set1_ps(scale));
        _mm_mask_storeu_ps(scores + p, (__mmask8)((1u << m) - 1), s);
        for (size_t a = 0; a < m; a++) best = scores[p + a] > best ? scores[p + a] : best;
    }
    float sum = 0;
    for (size_t p = 0; p < n; p++) {
        scores[p] = expf(scores[p] - best);
        sum += scores[p];
    }
    for (size_t i = 0; i <= full; i += 16) {
        const __mmask16 mask = i < full ? (__mmask16)0xFFFF : tail;
        if (!mask) break;
        __m512 o = _mm512_setzero_ps();
        for (size_t p = 0; p < n; p++) {
            const __m512 v = _mm512_maskz_loadu_ps(mask, values + p * stride + i);
            o = _mm512_fmadd_ps(_mm512_set1_ps(scores[p] / sum), v, o);
        }
        _mm512_mask_storeu_ps(out + i, mask, o);
    }
}

int av_attend(int level, const float *q, const float *keys, const float *values, size_t stride, size_t n, size_t d,
              float scale, float *scores, float *out) {
    if (level < AV_KERNELS_AVX512 || n == 0) return 0;
    attend512(q, keys, values, stride, n, d, scale, scores, out);
    return 1;
}

#else

int av_attend(int level, const float *q, const float *keys, const float *values, size_t stride, size_t n, size_t d,
              float scale, float *scores, float *out) {
    (void)level, (void)q, (void)keys, (void)values, (void)stride, (void)n, (void)d, (void)scale, (void)scores;
    (void)out;
    return 0;
}

#endif
