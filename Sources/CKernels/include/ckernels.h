// The innermost matrix kernels that Swift cannot compile for a chosen instruction set: each has an
// AVX-512 and an AVX2+FMA variant built with per-function target attributes, gathered per level into
// a table of function pointers (av_kernels) that the caller fills once.
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

/// Calls fn(context, part, parts) for every part in [0, parts) on the persistent pool's threads and the
/// caller's (part 0), parts ≤ threads; one part, on the caller, when another caller holds the pool.
/// Returns when every part has returned. Other work of a forward pass goes here, so that no thread
/// of another pool competes with the pool's spinning workers for the cores.
void av_pool_run(void (*fn)(void *context, int part, int parts), void *context, int threads);

/// The calling thread's pool jobs since it last asked, then reset: those of two or more threads
/// split over the pool (`split`), and those that asked for two or more but ran alone on the caller,
/// the pool being held by another (`alone`). Tests prove with it that a comparison across thread
/// counts ran on several threads.
void av_pool_take_counts(unsigned long *split, unsigned long *alone);

/// Counts of one merge block (see av_merge_store).
typedef struct {
    uint64_t changed;     ///< elements whose f64 sum differs (bitwise) from the widened base
    uint64_t non_finite;  ///< elements stored as Inf or NaN where the base was finite
    uint64_t same;        ///< changed elements stored as the base's own bits (a change rounded away)
    size_t done;          ///< elements stored: n rounded down to a multiple of 8; the caller does the rest
} av_merge_counts;

/// How far ahead (bytes) av_xxh64_stripes prefetches.
#define AV_XXH64_PREFETCH 4096

/// Consumes the whole 32-byte stripes of bytes[0..<n] into XXH64's four lanes (updated in place);
/// returns the bytes consumed. Prefetches ahead: the data is usually not in cache yet.
size_t av_xxh64_stripes(uint64_t lanes[4], const void *bytes, size_t n);

/// How av_panel_pack lays out activations, for the weights' dtype: f32 values (f32 weights); bf16
/// pairs split into hi = bf16(x) (nearest even) and lo = bf16(x − hi), whose sum is within 2^-17
/// of |x| (bf16 weights on the bf16 dot product); or hi alone (x rounded to bf16, as llama.cpp does).
enum av_panel_layout { AV_PANEL_F32 = 0, AV_PANEL_BF16_SPLIT = 1, AV_PANEL_BF16_HI = 2 };

/// Bytes av_panel_pack writes for tokens rows of cols values: panels of 16 tokens, zero-padded.
size_t av_panel_bytes(int layout, size_t tokens, size_t cols);

/// The most queries av_attend_block takes at once.
#define AV_ATTEND_BLOCK 8

/// The kernels of one instruction-set level, filled once by av_kernels_fill. An entry is NULL where
/// the level has no kernel for it: the caller runs its portable code instead. A caller picks its
/// table once (Tensors' KernelLevel) and calls through it; no kernel branches on a level.
typedef struct av_kernels {
    /// The level this table is for.
    int level;

    /// y[t * y_stride + r] = W[r] · x[t] for rows r in [0, rows) and tokens t in [0, tokens): W is
    /// `rows` rows of `cols` f32 (row r at w + r * cols), x is `tokens` rows of `cols` f32. Each result
    /// is one fixed sequence of fused multiply-adds over the row, independent of the row range and
    /// threads (one token: a row streamed alone, for decode).
    void (*matmul_f32)(const float *w, size_t rows, size_t cols, const float *x, size_t tokens, float *y,
                       size_t y_stride);
    /// The same with W in bf16 (the upper 16 bits of f32), widened as it is read.
    void (*matmul_bf16)(const uint16_t *w, size_t rows, size_t cols, const float *x, size_t tokens, float *y,
                        size_t y_stride);

    /// gate[i] = silu(gate[i]) · up[i] for i < n, silu(g) = g / (1 + e^-g) with a vector e^x within
    /// 2 ulp (vexp.h). AVX-512 levels.
    void (*swiglu)(float *gate, const float *up, size_t n);
    /// log Σ e^x[i] over n ≥ 1 values: m + log Σ e^(x[i] − m) with m the largest, each term from the
    /// vector e^x (within 3 ulp) and summed in f64, in a fixed order. AVX-512 levels.
    double (*log_sum_exp)(const float *x, size_t n);

    /// acc[i] = base[i] + Σ_k scales[k] · deltas[k][i] for i < n, in f64, in that order, each product
    /// and each sum rounded separately (no fused multiply-add): the portable Swift path's arithmetic.
    /// Deltas are f32, or bf16 where delta_bf16[k] is 1.
    void (*merge_accumulate)(const float *base, size_t n, const void *const *deltas, const int *delta_bf16,
                             const double *scales, size_t terms, double *acc);
    /// out[i] = acc[i] rounded once to f32 (nearest even) or bf16 (out_bf16: through a round-to-odd
    /// f32, NaN quieted), for the first counts->done elements, with the counts the merge reports
    /// (zeroed first); base is the base as f32 values (base_bf16: it was bf16, so bf16 outputs
    /// compare with its bits).
    void (*merge_store)(const double *acc, const float *base, size_t n, void *out, int out_bf16, int base_bf16,
                        av_merge_counts *counts);

    /// Per av_panel_layout: x (tokens rows of cols f32) packed into out (av_panel_bytes of it), the
    /// panels split over `threads` of the persistent pool. F32 needs AVX-512, the bf16 layouts its
    /// bf16 dot product.
    void (*panel_pack[3])(const float *x, size_t tokens, size_t cols, void *out, int threads);
    /// Per av_panel_layout: y[t * y_stride + r] = W[r] · x[t] with x packed by panel_pack (same
    /// layout, tokens and cols) and W rows of cols f32 (F32) or bf16 (the bf16 layouts). Each result
    /// is the sum over k in order (f32 fused multiply-adds; bf16: pairs of products, hi then lo),
    /// independent of the row range, the other tokens and threads.
    void (*panel_matmul[3])(const void *w, size_t rows, size_t cols, const void *xp, size_t tokens, float *y,
                            size_t y_stride);

    /// attend for nq queries q[i] (outputs out[i]) that share both runs' starts: query i sees the n
    /// positions of the first run and the first n2[i] of the second. Each query's result is the
    /// bytes attend gives it alone; the keys and values are read once for all. scores: nq rows of
    /// `width` floats. Returns 0 (nothing done) for nq outside 1 ... AV_ATTEND_BLOCK, or when a
    /// query sees no position or more than `width`. AVX-512 levels.
    int (*attend_block)(size_t nq, const float *const *q, float *const *out, const float *keys,
                        const float *values, size_t n, const float *keys2, const float *values2, const size_t *n2,
                        size_t stride, size_t d, float scale, float *scores, size_t width);
    /// One query's attention over two runs of cached positions (keys/values at rows `stride` floats
    /// apart, d values each; n and n2 positions): scores = scale · q · key over both runs in order,
    /// softmax (max subtracted, vexp.h's e^x, normalized by the inverse of the sum), out = Σ softmax ·
    /// value. One fixed order of operations. Returns 0 (nothing done) when both runs are empty.
    /// AVX-512 levels.
    int (*attend)(const float *q, const float *keys, const float *values, size_t n, const float *keys2,
                  const float *values2, size_t n2, size_t stride, size_t d, float scale, float *scores, float *out);
} av_kernels;

/// Fills `table` with the kernels of `level` (one av_kernels_detect allows; a level this build or
/// architecture lacks leaves its entries NULL).
void av_kernels_fill(int level, av_kernels *table);

/// y[r] = W[r] · x for one vector through table->matmul_*, the rows split into `threads` fixed
/// slices run by the persistent pool (the caller runs the first). `bf16` says W's dtype. Returns 0,
/// doing nothing, when the table has no such kernel.
int av_matmul_vector_pool(const av_kernels *table, int bf16, const void *w, size_t rows, size_t cols,
                          const float *x, float *y, int threads);

/// table->panel_matmul[layout] with the rows in chunks of whole groups of the kernel's 12 rows,
/// which `threads` parts on the persistent pool (the caller runs one) take in turn as each finishes
/// one. The same bytes on any thread count. Returns 0, doing nothing, when the table has no kernel
/// for the layout.
int av_panel_matmul_pool(const av_kernels *table, int layout, const void *w, size_t rows, size_t cols,
                         const void *xp, size_t tokens, float *y, size_t y_stride, int threads);

#endif
