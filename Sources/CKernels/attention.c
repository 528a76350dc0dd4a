// Attention over runs of cached positions, for the AVX-512 levels, of a block of queries that read
// each key and value once (one query is a block of one): scores four keys at a time (one folded
// reduction for the four), softmax on 16 scores at a time (vexp.h's e^x), then the weighted sum of
// the values in registers.
#include "ckernels.h"
#include "fill.h"

#include <math.h>

#if defined(__x86_64__)
#include <immintrin.h>

#include "tiles.h"
#include "vexp.h"

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))

// The largest lane of lane-wise maxima.
AVX512 static float largest(__m128 v) {
    v = _mm_max_ps(v, _mm_movehl_ps(v, v));
    v = _mm_max_ps(v, _mm_movehdup_ps(v));
    return _mm_cvtss_f32(v);
}

// Softmax in place over scores[0 ..< all], whose largest is best: e^(s − best) on 16 scores at a
// time, summed in lanes, then normalized.
AVX512 static void softmax(float *scores, size_t all, float best) {
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
}

// Queries that share both runs' starts (consecutive tokens of one segment, one head): the keys and
// values of a step are read from memory once for all of them, then from L1. Each query's scores,
// softmax and sums are the same operations in the same order whatever the other queries: one query
// (av_attend) is a block of one.
AVX512 static void attend_block512(size_t nq, const float *const *q, float *const *out, const float *keys,
                                   const float *values, size_t n, const float *keys2, const float *values2,
                                   const size_t *n2, size_t stride, size_t d, float scale, float *scores,
                                   size_t width) {
    __m128 best[AV_ATTEND_BLOCK];  // lane-wise largest scores (NaN scores never win)
    for (size_t i = 0; i < nq; i++) best[i] = _mm_set1_ps(-INFINITY);
    const size_t full = d / 16 * 16;
    const __mmask16 tail = (__mmask16)((1u << (d - full)) - 1);
    // Scores, four keys at a time: run 0 is `before` (every query sees all n), run 1 the own run.
    for (int run = 0; run < 2; run++) {
        const float *kr = run ? keys2 : keys;
        size_t longest = run ? 0 : n;
        if (run) for (size_t i = 0; i < nq; i++) longest = n2[i] > longest ? n2[i] : longest;
        for (size_t p = 0; p < longest; p += 4) {
            const float *k[4];
            for (size_t i = 0; i < nq; i++) {
                const size_t count = run ? n2[i] : n;
                if (p >= count) continue;
                const size_t m = count - p < 4 ? count - p : 4;
                for (size_t a = 0; a < 4; a++) k[a] = kr + (p + (a < m ? a : 0)) * stride;
                __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
                for (size_t c = 0; c <= full; c += 16) {
                    const __mmask16 mask = c < full ? (__mmask16)0xFFFF : tail;
                    if (!mask) break;
                    const __m512 qv = _mm512_maskz_loadu_ps(mask, q[i] + c);
                    for (size_t a = 0; a < 4; a++)
                        acc[a] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, k[a] + c), qv, acc[a]);
                }
                float *si = scores + i * width + (run ? n : 0);
                const __m128 sv = _mm_mul_ps(av_reduce4(acc[0], acc[1], acc[2], acc[3]), _mm_set1_ps(scale));
                const __mmask8 kept = (__mmask8)((1u << m) - 1);
                _mm_mask_storeu_ps(si + p, kept, sv);
                best[i] = _mm_mask_max_ps(best[i], kept, sv, best[i]);
            }
        }
    }
    for (size_t i = 0; i < nq; i++) softmax(scores + i * width, n + n2[i], largest(best[i]));
    // Weighted values, 16 lanes at a time: each value row read once for every query that sees it.
    for (size_t c = 0; c <= full; c += 16) {
        const __mmask16 mask = c < full ? (__mmask16)0xFFFF : tail;
        if (!mask) break;
        __m512 o[AV_ATTEND_BLOCK];
        for (size_t i = 0; i < nq; i++) o[i] = _mm512_setzero_ps();
        for (size_t p = 0; p < n; p++) {
            const __m512 v = _mm512_maskz_loadu_ps(mask, values + p * stride + c);
            for (size_t i = 0; i < nq; i++) o[i] = _mm512_fmadd_ps(_mm512_set1_ps(scores[i * width + p]), v, o[i]);
        }
        size_t longest = 0;
        for (size_t i = 0; i < nq; i++) longest = n2[i] > longest ? n2[i] : longest;
        for (size_t p = 0; p < longest; p++) {
            const __m512 v = _mm512_maskz_loadu_ps(mask, values2 + p * stride + c);
            for (size_t i = 0; i < nq; i++)
                if (p < n2[i]) o[i] = _mm512_fmadd_ps(_mm512_set1_ps(scores[i * width + n + p]), v, o[i]);
        }
        for (size_t i = 0; i < nq; i++) _mm512_mask_storeu_ps(out[i] + c, mask, o[i]);
    }
}

static int attend_block_checked(size_t nq, const float *const *q, float *const *out, const float *keys,
                                const float *values, size_t n, const float *keys2, const float *values2,
                                const size_t *n2, size_t stride, size_t d, float scale, float *scores, size_t width) {
    if (nq == 0 || nq > AV_ATTEND_BLOCK) return 0;
    for (size_t i = 0; i < nq; i++)
        if (n + n2[i] == 0 || n + n2[i] > width) return 0;
    attend_block512(nq, q, out, keys, values, n, keys2, values2, n2, stride, d, scale, scores, width);
    return 1;
}

static int attend_one(const float *q, const float *keys, const float *values, size_t n, const float *keys2,
                      const float *values2, size_t n2, size_t stride, size_t d, float scale, float *scores,
                      float *out) {
    if (n + n2 == 0) return 0;
    attend_block512(1, &q, &out, keys, values, n, keys2, values2, &n2, stride, d, scale, scores, n + n2);
    return 1;
}

#endif

void av_fill_attention(av_kernels *table) {
#if defined(__x86_64__)
    if (table->level >= AV_KERNELS_AVX512) {
        table->attend_block = attend_block_checked;
        table->attend = attend_one;
    }
#else
    (void)table;
#endif
}
