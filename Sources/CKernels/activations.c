// SwiGLU's elementwise product for the AVX-512 levels: gate = silu(gate) · up, with silu(g) =
// g / (1 + e^-g) computed as the scalar code writes it, e^x from vexp.h instead of libm's expf.
#include "ckernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

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

int av_swiglu(int level, float *gate, const float *up, size_t n) {
    if (level < AV_KERNELS_AVX512) return 0;
    swiglu512(gate, up, n);
    return 1;
}


#else

int av_swiglu(int level, float *gate, const float *up, size_t n) {
    (void)level, (void)gate, (void)up, (void)n;
    return 0;
}

#endif
