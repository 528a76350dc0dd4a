// Elementwise work with e^x for the AVX-512 levels, from vexp.h instead of libm: SwiGLU's product
// gate = silu(gate) · up, with silu(g) = g / (1 + e^-g) computed as the scalar code writes it; and
// the log-sum-exp of a row of logits, which every scored token of an evaluation needs over the
// whole vocabulary (libm's f64 exp was 5% of a pairs evaluation, on one thread).
#include "ckernels.h"
#include "fill.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <math.h>

#include "vexp.h"

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))

AVX512 static void swiglu512(float *gate, const float *up, size_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        const __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
        const __m512 e = av_exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
        const __m512 silu = _mm512_div_ps(g, _mm512_add_ps(one, e));
        _mm512_mask_storeu_ps(gate + i, m, _mm512_mul_ps(silu, _mm512_maskz_loadu_ps(m, up + i)));
    }
}


AVX512 static double log_sum_exp512(const float *x, size_t n) {
    __m512 top = _mm512_set1_ps(-INFINITY);
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        top = _mm512_mask_max_ps(top, m, top, _mm512_maskz_loadu_ps(m, x + i));
    }
    const float most = _mm512_reduce_max_ps(top);
    // All −inf (or a NaN among them): the scalar formula's answer, without a 0 · inf.
    if (!(most > -INFINITY) || !(most < INFINITY)) return most;
    const __m512 shift = _mm512_set1_ps(most);
    __m512d lo = _mm512_setzero_pd(), hi = _mm512_setzero_pd();
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        // Masked-off lanes give e^-inf = 0.
        const __m512 v = _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), m, x + i);
        const __m512 e = av_exp16(_mm512_sub_ps(v, shift));
        lo = _mm512_add_pd(lo, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        hi = _mm512_add_pd(hi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
    }
    double lanes[16];
    _mm512_storeu_pd(lanes, lo);
    _mm512_storeu_pd(lanes + 8, hi);
    double sum = 0;
    for (int k = 0; k < 16; k++) sum += lanes[k];
    return (double)most + log(sum);
}

#endif

void av_fill_activations(av_kernels *table) {
#if defined(__x86_64__)
    if (table->level >= AV_KERNELS_AVX512) {
        table->swiglu = swiglu512;
        table->log_sum_exp = log_sum_exp512;
    }
#else
    (void)table;
#endif
}
