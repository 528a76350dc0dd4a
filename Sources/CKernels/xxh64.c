// XXH64's stripe loop with software prefetch: the engines hash input pages on first touch, where
// the hardware prefetcher (which stops at 4 KiB pages) leaves the loop waiting on memory.
#include "ckernels.h"

#include <string.h>

#define P1 0x9E3779B185EBCA87ull
#define P2 0xC2B2AE3D27D4EB4Full

static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t round64(uint64_t acc, const unsigned char *p) {
    uint64_t input;
    memcpy(&input, p, 8);  // little-endian hosts only: x86-64 and arm64
    return rotl64(acc + input * P2, 31) * P1;
}

size_t av_xxh64_stripes(uint64_t lanes[4], const void *bytes, size_t n) {
    const unsigned char *p = bytes;
    uint64_t a = lanes[0], b = lanes[1], c = lanes[2], d = lanes[3];
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        if ((i & 63) == 0) __builtin_prefetch(p + i + AV_XXH64_PREFETCH);
        a = round64(a, p + i);
        b = round64(b, p + i + 8);
        c = round64(c, p + i + 16);
        d = round64(d, p + i + 24);
    }
    lanes[0] = a, lanes[1] = b, lanes[2] = c, lanes[3] = d;
    return i;
}
