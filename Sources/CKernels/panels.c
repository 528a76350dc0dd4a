// Prefill on AVX-512 as a GEMM of register tiles over packed activations. The tokens of a product
// are packed once into panels of 16 (one token per vector lane, zero-padded); a tile is 12 weight
// rows × 2 panels, 24 accumulators, and each step broadcasts one weight (or bf16 pair) per row
// against the panels: no horizontal sums, the weights read once per 32 tokens, the panels from L2.
// Each result is the sum over k in order, in its own lane: independent of the tile, the row range,
// the thread count and the other tokens of the product.
//
// Three layouts: f32 activations for f32 weights (fused multiply-adds); for bf16 weights on the bf16
// dot product (vdpbf16ps, two products per lane per instruction), activations split into two bf16
// parts hi + lo that keep 16 of their 24 bits (the default), or hi alone (rounded to bf16 as
// llama.cpp rounds them: half the products, opt-in).
#include <stdatomic.h>
#include <string.h>

#include "ckernels.h"
#include "fill.h"

enum { PANEL = 16, ROWS = 12 };

static size_t panels(size_t tokens) { return (tokens + PANEL - 1) / PANEL; }

size_t av_panel_bytes(int layout, size_t tokens, size_t cols) {
    const size_t pairs = (cols + 1) / 2;
    switch (layout) {
    case AV_PANEL_F32: return panels(tokens) * cols * PANEL * 4;
    case AV_PANEL_BF16_SPLIT: return panels(tokens) * pairs * 2 * PANEL * 2 * 2;
    case AV_PANEL_BF16_HI: return panels(tokens) * pairs * PANEL * 2 * 2;
    default: return 0;
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))
#define AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

// ---- Packing ----

// Panel p holds tokens 16p ..< 16p + 16: for each k, their 16 values x[t][k] (zero past the last).
AVX512 static void pack_f32(const float *x, size_t tokens, size_t cols, float *out) {
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    for (size_t p = 0; p < panels(tokens); p++) {
        const size_t left = tokens - p * PANEL;
        const __mmask16 m = left >= PANEL ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
        const __m512i offsets = _mm512_mullo_epi32(lane, _mm512_set1_epi32((int)cols));
        const float *base = x + p * PANEL * cols;
        float *panel = out + p * PANEL * cols;
        for (size_t k = 0; k < cols; k++) {
            _mm512_storeu_ps(panel + k * PANEL, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, offsets, base + k, 4));
        }
    }
}

// bf16 panels: for each pair of columns (k, k+1), 32 bf16 values, token by token: lane t holds
// (x[t][k], x[t][k+1]) as vdpbf16ps pairs them; zero past the last token and for k+1 = cols.
// The split layout stores hi's 32 values, then lo's.
AVX512BF16 static void pack_bf16(const float *x, size_t tokens, size_t cols, uint16_t *out, int with_lo) {
    const size_t pairs = (cols + 1) / 2, step = with_lo ? 64 : 32;
    const __m256i lane = _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0);
    for (size_t p = 0; p < panels(tokens); p++) {
        const size_t left = tokens - p * PANEL;
        const __mmask16 m = left >= PANEL ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
        const __m256i offsets = _mm256_mullo_epi32(lane, _mm256_set1_epi32((int)cols * 4));
        const float *base = x + p * PANEL * cols;
        uint16_t *panel = out + p * pairs * step;
        for (size_t j = 0; j < pairs; j++) {
            __m512 first, second;  // tokens 0-7 and 8-15 of the panel, (x[t][k], x[t][k+1]) each
            if (2 * j + 1 < cols) {
                // One 64-bit gather per token: the pair is adjacent in memory.
                first = _mm512_castpd_ps(_mm512_mask_i32gather_pd(_mm512_setzero_pd(), (__mmask8)m, offsets,
                                                                  base + 2 * j, 1));
                second = _mm512_castpd_ps(_mm512_mask_i32gather_pd(_mm512_setzero_pd(), (__mmask8)(m >> 8), offsets,
                                                                   base + 8 * cols + 2 * j, 1));
            } else {
                // The last column of an odd width: its pair partner is zero.
                float a[32] = {0};
                for (size_t t = 0; t < PANEL && t < left; t++) a[2 * t] = base[t * cols + 2 * j];
                first = _mm512_loadu_ps(a);
                second = _mm512_loadu_ps(a + 16);
            }
            const __m512bh hi = _mm512_cvtne2ps_pbh(second, first);
            _mm512_storeu_si512(panel + j * step, (__m512i)hi);
            if (!with_lo) continue;
            const __m512i h = (__m512i)hi;
            const __m512 back0 = _mm512_castsi512_ps(_mm512_slli_epi32(
                _mm512_cvtepu16_epi32(_mm512_castsi512_si256(h)), 16));
            const __m512 back1 = _mm512_castsi512_ps(_mm512_slli_epi32(
                _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(h, 1)), 16));
            const __m512bh lo = _mm512_cvtne2ps_pbh(_mm512_sub_ps(second, back1), _mm512_sub_ps(first, back0));
            _mm512_storeu_si512(panel + j * step + 32, (__m512i)lo);
        }
    }
}

// ---- Tiles ----

// Stores a tile's accumulators: acc[a][j] lane i is token 16j + i of row a.
AVX512 static void store_tile(__m512 acc[ROWS][2], size_t nr, size_t nt, float *y, size_t ys) {
    float tile[ROWS][2 * PANEL];
    for (size_t a = 0; a < ROWS; a++) {
        _mm512_storeu_ps(tile[a], acc[a][0]);
        _mm512_storeu_ps(tile[a] + PANEL, acc[a][1]);
    }
    for (size_t t = 0; t < nt; t++)
        for (size_t a = 0; a < nr; a++) y[t * ys + a] = tile[a][t];
}

// f32: for each k, one broadcast weight per row against both panels.
#define TILE_F32(NAME, NP)                                                                                          \
    AVX512 static void NAME(const float *const *wr, size_t cols, const float *x0, const float *x1,                  \
                            __m512 acc[ROWS][2]) {                                                                   \
        for (size_t a = 0; a < ROWS; a++) acc[a][0] = acc[a][1] = _mm512_setzero_ps();                               \
        for (size_t k = 0; k < cols; k++) {                                                                          \
            const __m512 u = _mm512_loadu_ps(x0 + k * PANEL);                                                        \
            const __m512 v = NP > 1 ? _mm512_loadu_ps(x1 + k * PANEL) : u;                                           \
            _Pragma("clang loop unroll(full)") for (size_t a = 0; a < ROWS; a++) {                                   \
                const __m512 w = _mm512_set1_ps(wr[a][k]);                                                           \
                acc[a][0] = _mm512_fmadd_ps(w, u, acc[a][0]);                                                        \
                if (NP > 1) acc[a][1] = _mm512_fmadd_ps(w, v, acc[a][1]);                                            \
            }                                                                                                        \
        }                                                                                                            \
    }

TILE_F32(tile_f32_2, 2)
TILE_F32(tile_f32_1, 1)

// The bf16 pair (w[2j], w[2j+1]) of a row as one 32-bit lane, broadcast; for the last column of an
// odd width, w[2j] with a zero partner.
#define PAIR(ROW, J) ((__m512bh)_mm512_set1_epi32((int)pair_bits((ROW) + 2 * (J))))
#define LAST(ROW, J) ((__m512bh)_mm512_set1_epi32((int)(ROW)[2 * (J)]))

static inline uint32_t pair_bits(const uint16_t *p) {
    uint32_t u;
    memcpy(&u, p, 4);
    return u;
}

// One pair of columns of a bf16 tile: one broadcast weight pair per row against the panels' hi (and
// lo) parts; hi and lo products go to the same accumulator, hi first.
#define BF16_STEP(NP, LO, J, WEIGHT)                                                                                \
    {                                                                                                                \
        const uint16_t *p0 = x0 + (J) * step, *p1 = x1 + (J) * step;                                                 \
        const __m512bh uh = (__m512bh)_mm512_loadu_si512(p0), ul = (__m512bh)_mm512_loadu_si512(p0 + 32 * LO);       \
        const __m512bh vh = (__m512bh)_mm512_loadu_si512(p1), vl = (__m512bh)_mm512_loadu_si512(p1 + 32 * LO);       \
        _Pragma("clang loop unroll(full)") for (size_t a = 0; a < ROWS; a++) {                                       \
            const __m512bh w = WEIGHT(wr[a], J);                                                                     \
            acc[a][0] = _mm512_dpbf16_ps(acc[a][0], w, uh);                                                          \
            if (LO) acc[a][0] = _mm512_dpbf16_ps(acc[a][0], w, ul);                                                  \
            if (NP > 1) {                                                                                            \
                acc[a][1] = _mm512_dpbf16_ps(acc[a][1], w, vh);                                                      \
                if (LO) acc[a][1] = _mm512_dpbf16_ps(acc[a][1], w, vl);                                              \
            }                                                                                                        \
        }                                                                                                            \
    }

#define TILE_BF16(NAME, NP, LO)                                                                                     \
    AVX512BF16 static void NAME(const uint16_t *const *wr, size_t cols, const uint16_t *x0, const uint16_t *x1,     \
                                __m512 acc[ROWS][2]) {                                                               \
        for (size_t a = 0; a < ROWS; a++) acc[a][0] = acc[a][1] = _mm512_setzero_ps();                               \
        const size_t whole = cols / 2, step = LO ? 64 : 32;                                                          \
        for (size_t j = 0; j < whole; j++) BF16_STEP(NP, LO, j, PAIR)                                                \
        if (cols % 2) BF16_STEP(NP, LO, whole, LAST)                                                                 \
    }

TILE_BF16(tile_split_2, 2, 1)
TILE_BF16(tile_split_1, 1, 1)
TILE_BF16(tile_hi_2, 2, 0)
TILE_BF16(tile_hi_1, 1, 0)

// Rows in groups of 12 (a short last group repeats its last row, stored once), tokens in pairs of
// panels (a lone last panel has its own tile): the weights of a group are read once per 32 tokens.
#define PANEL_MATMUL(NAME, TARGET, WTYPE, XTYPE, PANEL_ELEMENTS, TILE2, TILE1)                                      \
    TARGET static void NAME(const void *wv, size_t rows, size_t cols, const void *xpv, size_t tokens, float *y,     \
                            size_t ys) {                                                                             \
        const WTYPE *w = wv;                                                                                         \
        const XTYPE *xp = xpv;                                                                                       \
        const size_t np = panels(tokens), per = PANEL_ELEMENTS;                                                      \
        for (size_t r0 = 0; r0 < rows; r0 += ROWS) {                                                                 \
            const size_t nr = rows - r0 < ROWS ? rows - r0 : ROWS;                                                   \
            const WTYPE *wr[ROWS];                                                                                   \
            for (size_t a = 0; a < ROWS; a++) wr[a] = w + (r0 + (a < nr ? a : nr - 1)) * cols;                       \
            for (size_t p = 0; p < np; p += 2) {                                                                     \
                __m512 acc[ROWS][2];                                                                                 \
                const XTYPE *x0 = xp + p * per;                                                                      \
                if (p + 1 < np) TILE2(wr, cols, x0, x0 + per, acc);                                                  \
                else TILE1(wr, cols, x0, x0, acc);                                                                   \
                const size_t t0 = p * PANEL, nt = tokens - t0 < 2 * PANEL ? tokens - t0 : 2 * PANEL;                 \
                store_tile(acc, nr, nt, y + t0 * ys + r0, ys);                                                       \
            }                                                                                                        \
        }                                                                                                            \
    }

PANEL_MATMUL(matmul_f32, AVX512, float, float, cols * PANEL, tile_f32_2, tile_f32_1)
PANEL_MATMUL(matmul_split, AVX512BF16, uint16_t, uint16_t, (cols + 1) / 2 * 64, tile_split_2, tile_split_1)
PANEL_MATMUL(matmul_hi, AVX512BF16, uint16_t, uint16_t, (cols + 1) / 2 * 32, tile_hi_2, tile_hi_1)

typedef struct {
    int layout;
    const float *x;
    size_t tokens, cols;
    void *out;
} pack_job;

// Packs part `part` of `parts` of the panels (each panel is independent of the others).
static void pack_part(void *context, int part, int parts) {
    const pack_job *j = context;
    const size_t np = panels(j->tokens);
    const size_t lo = np * (size_t)part / (size_t)parts, hi = np * (size_t)(part + 1) / (size_t)parts;
    if (lo >= hi) return;
    const size_t first = lo * PANEL, count = (hi * PANEL < j->tokens ? hi * PANEL : j->tokens) - first;
    const float *x = j->x + first * j->cols;
    char *out = (char *)j->out + lo * av_panel_bytes(j->layout, PANEL, j->cols);
    if (j->layout == AV_PANEL_F32) pack_f32(x, count, j->cols, (float *)out);
    else pack_bf16(x, count, j->cols, (uint16_t *)out, j->layout == AV_PANEL_BF16_SPLIT);
}

static void pack(int layout, const float *x, size_t tokens, size_t cols, void *out, int threads) {
    pack_job job = {layout, x, tokens, cols, out};
    if (threads > 1 && panels(tokens) > 1) av_pool_run(pack_part, &job, threads);
    else pack_part(&job, 0, 1);
}

static void pack_f32_layout(const float *x, size_t tokens, size_t cols, void *out, int threads) {
    pack(AV_PANEL_F32, x, tokens, cols, out, threads);
}

static void pack_split_layout(const float *x, size_t tokens, size_t cols, void *out, int threads) {
    pack(AV_PANEL_BF16_SPLIT, x, tokens, cols, out, threads);
}

static void pack_hi_layout(const float *x, size_t tokens, size_t cols, void *out, int threads) {
    pack(AV_PANEL_BF16_HI, x, tokens, cols, out, threads);
}

#endif

void av_fill_panels(av_kernels *table) {
#if defined(__x86_64__)
    if (table->level >= AV_KERNELS_AVX512) {
        table->panel_pack[AV_PANEL_F32] = pack_f32_layout;
        table->panel_matmul[AV_PANEL_F32] = matmul_f32;
    }
    if (table->level >= AV_KERNELS_AVX512_BF16) {
        table->panel_pack[AV_PANEL_BF16_SPLIT] = pack_split_layout;
        table->panel_matmul[AV_PANEL_BF16_SPLIT] = matmul_split;
        table->panel_pack[AV_PANEL_BF16_HI] = pack_hi_layout;
        table->panel_matmul[AV_PANEL_BF16_HI] = matmul_hi;
    }
#else
    (void)table;
#endif
}

// A prompt's product on the pool: the parts take chunks of whole row groups in turn from a shared
// counter, so a thread slowed by the machine takes fewer (fixed halves left the other thread waiting
// for it: 3-4% of a 7B prompt's samples). Which thread computes a row does not change its bytes.
enum { CHUNK_GROUPS = 4 };

typedef struct {
    void (*kernel)(const void *w, size_t rows, size_t cols, const void *xp, size_t tokens, float *y, size_t ys);
    size_t size;
    const void *w;
    size_t rows, cols;
    const void *xp;
    size_t tokens;
    float *y;
    size_t y_stride;
    atomic_size_t next;  // the next chunk of CHUNK_GROUPS row groups
} product_job;

static void product_part(void *context, int part, int parts) {
    (void)part, (void)parts;
    product_job *j = context;
    const size_t chunk = CHUNK_GROUPS * ROWS;
    for (;;) {
        const size_t lo = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed) * chunk;
        if (lo >= j->rows) return;
        const size_t hi = j->rows - lo < chunk ? j->rows : lo + chunk;
        j->kernel((const char *)j->w + lo * j->cols * j->size, hi - lo, j->cols, j->xp, j->tokens, j->y + lo,
                  j->y_stride);
    }
}

int av_panel_matmul_pool(const av_kernels *table, int layout, const void *w, size_t rows, size_t cols,
                         const void *xp, size_t tokens, float *y, size_t y_stride, int threads) {
    if (layout < AV_PANEL_F32 || layout > AV_PANEL_BF16_HI || !table->panel_matmul[layout]) return 0;
    product_job job = {
        table->panel_matmul[layout], layout == AV_PANEL_F32 ? 4 : 2, w, rows, cols, xp, tokens, y, y_stride, 0};
    av_pool_run(product_part, &job, threads);
    return 1;
}
