// The innermost matrix kernels that Swift cannot compile for a chosen instruction set: each has an
// AVX-512 and an AVX2+FMA variant built with per-function target attributes, picked at run time.
// No allocation, no files, no policy: Tensors wraps them (KernelLevel, Kernels) in a Swift API.
#ifndef AV_CKERNELS_H
#define AV_CKERNELS_H

#include <stddef.h>
#include <stdint.h>

/// Instruction-set levels, best last. AVX512_BF16 is AVX-512 with the bf16 dot product
/// (vdpbf16ps), which prefill uses for bf16 weights; everything else runs as at AVX512.
enum av_kernel_level {
    AV_KERNELS_PORTABLE = 0,
    AV_KERNELS_AVX2 = 1,
    AV_KERNELS_AVX512 = 2,
    AV_KERNELS_AVX512_BF16 = 3
};

/// The best level this CPU runs (CPUID), or AV_KERNELS_PORTABLE on other architectures.
int av_kernels_detect(void);

/// y[t * y_stride + r] = W[r] · x[t] for rows r in [0, rows) and tokens t in [0, tokens): W is `rows`
/// rows of `cols` f32 (row r at w + r * cols), x is `tokens` rows of `cols` f32. Each result is one
/// fixed sequence of fused multiply-adds over the row, independent of the row range and threads.
/// `level` must be one av_kernels_detect allows; returns 0 when the level is not compiled in.
int av_matmul_f32(int level, const float *w, size_t rows, size_t cols, const float *x, size_t tokens, float *y,
                  size_t y_stride);

/// The same with W in bf16 (the upper 16 bits of f32), widened as it is read.
int av_matmul_bf16(int level, const uint16_t *w, size_t rows, size_t cols, const float *x, size_t tokens, float *y,
                   size_t y_stride);

/// y[r] = W[r] · x for one vector, the rows split into `threads` fixed slices run by a persistent
/// pool (the caller runs the first). `bf16` says W's dtype. Returns 0 for the portable level.
int av_matmul_vector_pool(int level, int bf16, const void *w, size_t rows, size_t cols, const float *x, float *y,
                          int threads);

/// Counts of one merge block (see av_merge_store).
typedef struct {
    uint64_t changed;     ///< elements whose f64 sum differs (bitwise) from the widened base
    uint64_t non_finite;  ///< elements stored as Inf or NaN where the base was finite
    uint64_t same;        ///< changed elements stored as the base's own bits (a change rounded away)
    size_t done;          ///< elements stored: n rounded down to a multiple of 8; the caller does the rest
} av_merge_counts;

/// acc[i] = base[i] + Σ_k scales[k] · deltas[k][i] for i < n, in f64, in that order, each product and
/// each sum rounded separately (no fused multiply-add): the portable Swift path's arithmetic. Deltas
/// are f32, or bf16 where delta_bf16[k] is 1. Returns 0 (nothing done) for the portable level.
int av_merge_accumulate(int level, const float *base, size_t n, const void *const *deltas, const int *delta_bf16,
                        const double *scales, size_t terms, double *acc);

/// out[i] = acc[i] rounded once to f32 (nearest even) or bf16 (out_bf16: through a round-to-odd f32,
/// NaN quieted), for the first counts->done elements, with the counts the merge reports; base is
/// the base as f32 values (base_bf16: it was bf16, so bf16 outputs compare with its bits). Returns 0
/// (nothing done) for the portable level.
int av_merge_store(int level, const double *acc, const float *base, size_t n, void *out, int out_bf16,
                   int base_bf16, av_merge_counts *counts);

/// How far ahead (bytes) av_xxh64_stripes prefetches.
#define AV_XXH64_PREFETCH 4096

/// Consumes the whole 32-byte stripes of bytes[0..<n] into XXH64's four lanes (updated in place);
/// returns the bytes consumed. Prefetches ahead: the data is usually not in cache yet.
size_t av_xxh64_stripes(uint64_t lanes[4], const void *bytes, size_t n);

/// Row stride (elements) of one token in av_bf16_split's output: two halves of cols rounded up to 32.
size_t av_bf16_split_stride(size_t cols);

/// x (tokens rows of cols f32) as bf16 for av_matmul_bf16_split: per token, cols rounded up to 32
/// values hi = bf16(x) (nearest even), then as many lo = bf16(x − hi), zero-padded; x − hi − lo is
/// within 2^-17 of |x|. Returns 0 (nothing written) below AV_KERNELS_AVX512_BF16.
int av_bf16_split(int level, const float *x, size_t tokens, size_t cols, uint16_t *out);

/// y[t * y_stride + r] = W[r] · x[t] with W in bf16 and x split by av_bf16_split, on the bf16 dot
/// product: hi and lo products summed in f32 (hi_only: the hi products alone, x rounded to bf16 as
/// llama.cpp rounds it). One fixed sequence per result. Returns 0 below AV_KERNELS_AVX512_BF16.
int av_matmul_bf16_split(int level, const uint16_t *w, size_t rows, size_t cols, const uint16_t *xs, size_t tokens,
                         float *y, size_t y_stride, int hi_only);

/// One query's attention over two runs of cached positions (keys/values at rows `stride` floats
/// apart, d values each; n and n2 positions): scores = scale · q · key over both runs in order,
/// softmax (max subtracted, libm expf), out = Σ softmax · value. One fixed order of operations.
/// Returns 0 (nothing done) below AV_KERNELS_AVX512 or when both runs are empty.
int av_attend(int level, const float *q, const float *keys, const float *values, size_t n, const float *keys2,
              const float *values2, size_t n2, size_t stride, size_t d, float scale, float *scores, float *out);

#endif
