// The innermost matrix kernels that Swift cannot compile for a chosen instruction set: each has an
// AVX-512 and an AVX2+FMA variant built with per-function target attributes, picked at run time.
// No allocation, no files, no policy: Tensors wraps them (KernelLevel, Kernels) in a Swift API.
#ifndef AV_CKERNELS_H
#define AV_CKERNELS_H

#include <stddef.h>
#include <stdint.h>

/// Instruction-set levels, best last.
enum av_kernel_level { AV_KERNELS_PORTABLE = 0, AV_KERNELS_AVX2 = 1, AV_KERNELS_AVX512 = 2 };

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

#endif
