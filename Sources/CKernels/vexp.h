// e^x on 16 lanes for the AVX-512 kernels (attention's softmax, SwiGLU): Cody–Waite reduction
// x = n·ln2 + r, |r| ≤ ln2/2, Cephes' degree-6 polynomial for e^r (within 2 ulp of e^x over the
// float range), then r scaled by 2^n with vscalefps, which rounds to subnormals, zero and infinity
// as e^x does. NaN stays NaN; e^±inf is inf and 0.
#ifndef AV_CKERNELS_VEXP_H
#define AV_CKERNELS_VEXP_H

#include <immintrin.h>

#define AV_VEXP_TARGET __attribute__((target("avx512f,avx512vl,fma")))

AV_VEXP_TARGET static inline __m512 av_exp16(__m512 x) {
    // Beyond ±150 the result is already inf or 0; clamping keeps n finite (NaN passes through).
    x = _mm512_min_ps(_mm512_set1_ps(150.0f), _mm512_max_ps(_mm512_set1_ps(-150.0f), x));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

#endif
