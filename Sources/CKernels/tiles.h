// Shared by the AVX-512 tile kernels (ckernels.c, bf16dot.c): storing a 4-row × 6-token tile.
#ifndef AV_CKERNELS_TILES_H
#define AV_CKERNELS_TILES_H

#include <immintrin.h>
#include <stddef.h>

#define AV_TILE_TARGET __attribute__((target("avx512f,avx512vl")))

// The sums of four accumulators as one vector [Σa0, Σa1, Σa2, Σa3]: the halves of all four are
// folded together (14 instructions where four separate reductions take about 32). A fixed order,
// so a result does not depend on the tile it falls in.
AV_TILE_TARGET static inline __m128 av_reduce4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
    const __m512 s01 = _mm512_add_ps(_mm512_shuffle_f32x4(a0, a1, _MM_SHUFFLE(1, 0, 1, 0)),
                                     _mm512_shuffle_f32x4(a0, a1, _MM_SHUFFLE(3, 2, 3, 2)));
    const __m512 s23 = _mm512_add_ps(_mm512_shuffle_f32x4(a2, a3, _MM_SHUFFLE(1, 0, 1, 0)),
                                     _mm512_shuffle_f32x4(a2, a3, _MM_SHUFFLE(3, 2, 3, 2)));
    __m512 t = _mm512_add_ps(_mm512_shuffle_f32x4(s01, s23, _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_f32x4(s01, s23, _MM_SHUFFLE(3, 1, 3, 1)));
    t = _mm512_add_ps(t, _mm512_permute_ps(t, _MM_SHUFFLE(2, 3, 0, 1)));
    t = _mm512_add_ps(t, _mm512_permute_ps(t, _MM_SHUFFLE(1, 0, 3, 2)));
    const __m512i first = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 8, 4, 0);
    return _mm512_castps512_ps128(_mm512_permutexvar_ps(first, t));
}

// Stores the sums of a tile's accumulators acc[row][token] for nr rows and nt tokens: token b's
// rows go to y[b * ys + 0 ..< nr], which are adjacent.
AV_TILE_TARGET static inline void av_store_tile(__m512 acc[4][6], size_t nr, size_t nt, float *y, size_t ys) {
    const __mmask8 rows = (__mmask8)((1u << nr) - 1);
    for (size_t b = 0; b < nt; b++) {
        _mm_mask_storeu_ps(y + b * ys, rows, av_reduce4(acc[0][b], acc[1][b], acc[2][b], acc[3][b]));
    }
}

#endif
