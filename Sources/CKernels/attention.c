// One query's attention over runs of cached positions, for the AVX-512 levels: scores four keys at
// a time (one folded reduction for the four), softmax on 16 scores at a time (vexp.h's e^x), then
// the weighted sum of the values in registers.
#include "ckernels.h"

#include <math.h>

#if defined(__x86_64__)
#include <immintrin.h>

#include "tiles.h"
#include "vexp.h"

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))

// scores[p] = scale · q · keys[p] for p < n; returns the largest, or `best` if larger.
AVX512 static float score_run(const float *q, const float *keys, size_t n, size_t stride, size_t d, float scale,
                              float *scores, float best) {
    const size_t full = d / 16 * 16;
    const __mmask16 tail = (__mmask16)((1u << (d - full)) - 1);
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
    return best;
}

// out[i..i+16) (masked) += Σ_p weights[p] · values[p][i..] over a run.
AVX512 static __m512 sum_run(__m512 o, const float *weights, const float *values, size_t n, size_t stride, size_t i,
                             __mmask16 mask) {
    for (size_t p = 0; p < n; p++) {
        const __m512 v = _mm512_maskz_loadu_ps(mask, values + p * stride + i);
        o = _mm512_fmadd_ps(_mm512_set1_ps(weights[p]), v, o);
    }
    return o;
}

AVX512 static void attend512(const float *q, const float *keys, const float *values, size_t n, const float *keys2,
                             const float *values2, size_t n2, size_t stride, size_t d, float scale, float *scores,
                             float *out) {
    float best = score_run(q, keys, n, stride, d, scale, scores, -INFINITY);
    best = score_run(q, keys2, n2, stride, d, scale, scores + n, best);
    // Softmax: e^(s − best) on 16 scores at a time, summed in lanes, then normalized.
    const size_t all = n + n2;
    __m512 sums = _mm512_setzero_ps();
    for (size_t p = 0; p < all; p += 16) {
        const __mmask16 m = all - p >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (all - p)) - 1);
        const __m512 e = av_exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, scores + p), _mm512_set1_ps(best)));
        _mm512_mask_storeu_ps(scores + p, m, e);
        sums = _mm512_mask_add_ps(sums, m, sums, e);
    }
    const __m512 inverse = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sums));
    for (size_t p = 0; p < all; p += 16) {
        const __mmask16 m = all - p >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (all - p)) - 1);
        _mm512_mask_storeu_ps(scores + p, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, scores + p), inverse));
    }
    const size_t full = d / 16 * 16;
    const __mmask16 tail = (__mmask16)((1u << (d - full)) - 1);
    for (size_t i = 0; i <= full; i += 16) {
        const __mmask16 mask = i < full ? (__mmask16)0xFFFF : tail;
        if (!mask) break;
        __m512 o = sum_run(_mm512_setzero_ps(), scores, values, n, stride, i, mask);
        o = sum_run(o, scores + n, values2, n2, stride, i, mask);
        _mm512_mask_storeu_ps(out + i, mask, o);
    }
}

int av_attend(int level, const float *q, const float *keys, const float *values, size_t n, const float *keys2,
              const float *values2, size_t n2, size_t stride, size_t d, float scale, float *scores, float *out) {
    if (level < AV_KERNELS_AVX512 || n + n2 == 0) return 0;
    attend512(q, keys, values, n, keys2, values2, n2, stride, d, scale, scores, out);
    return 1;
}

#else

int av_attend(int level, const float *q, const float *keys, const float *values, size_t n, const float *keys2,
              const float *values2, size_t n2, size_t stride, size_t d, float scale, float *scores, float *out) {
    (void)level, (void)q, (void)keys, (void)values, (void)n, (void)keys2, (void)values2, (void)n2, (void)stride;
    (void)d, (void)scale, (void)scores, (void)out;
    return 0;
}

#endif
