import CKernels

/// XXH64, the 64-bit xxHash of Yann Collet: the content fingerprint of checkpoints.
///
/// About memory speed in a release build (four independent 64-bit lanes per 32-byte stripe), so
/// fingerprinting while streaming costs no extra I/O and little time. Loads are unaligned.
public enum XXHash64 {
    static let p1: UInt64 = 0x9E37_79B1_85EB_CA87
    static let p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    static let p3: UInt64 = 0x1656_67B1_9E37_79F9
    static let p4: UInt64 = 0x85EB_CA77_C2B2_AE63
    static let p5: UInt64 = 0x27D4_EB2F_1656_67C5

    @inline(__always) static func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }
    @inline(__always) static func round(_ acc: UInt64, _ input: UInt64) -> UInt64 {
        rotl(acc &+ input &* p2, 31) &* p1
    }
    @inline(__always) static func merge(_ acc: UInt64, _ v: UInt64) -> UInt64 {
        (acc ^ round(0, v)) &* p1 &+ p4
    }

    /// The hash of `bytes` with `seed`.
    public static func hash(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
        var stream = Stream(seed: seed)
        return stream.finish(bytes)
    }

    /// XXH64 of bytes that come in pieces: `update` with whole 32-byte stripes, then `finish` with
    /// the rest (any length). The value is `hash` of the pieces joined, so a consumer can hash a
    /// block while it is in cache and compute on it before the next.
    public struct Stream {
        private var v1: UInt64
        private var v2: UInt64
        private var v3: UInt64
        private var v4: UInt64
        private let seed: UInt64
        private var length = 0

        /// An empty stream with `seed`.
        public init(seed: UInt64 = 0) {
            self.seed = seed
            v1 = seed &+ p1 &+ p2
            v2 = seed &+ p2
            v3 = seed
            v4 = seed &- p1
        }

        /// Adds `bytes`, a whole number of 32-byte stripes.
        public mutating func update(_ bytes: UnsafeRawBufferPointer) {
            precondition(bytes.count % 32 == 0, "XXHash64.Stream.update takes whole 32-byte stripes")
            _ = stripes(bytes)
        }

        /// Adds `bytes` (any length) and returns the hash of everything added.
        public mutating func finish(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
            let i = stripes(bytes)
            var h = seed &+ p5
            if length >= 32 {
                h = rotl(v1, 1) &+ rotl(v2, 7) &+ rotl(v3, 12) &+ rotl(v4, 18)
                h = merge(merge(merge(merge(h, v1), v2), v3), v4)
            }
            return XXHash64.finish(
                h, length: length, tail: UnsafeRawBufferPointer(rebasing: bytes[i...]))
        }

        /// Consumes the whole stripes of `bytes`; returns the bytes consumed.
        private mutating func stripes(_ bytes: UnsafeRawBufferPointer) -> Int {
            let n = bytes.count
            length += n
            guard let p = bytes.baseAddress, n >= 32 else { return 0 }
            var lanes = (v1, v2, v3, v4)
            let i = withUnsafeMutableBytes(of: &lanes) {
                av_xxh64_stripes($0.baseAddress!.assumingMemoryBound(to: UInt64.self), p, n)
            }
            (v1, v2, v3, v4) = lanes
            return i
        }
    }

    fileprivate static func finish(_ start: UInt64, length: Int, tail: UnsafeRawBufferPointer) -> UInt64 {
        var h = start &+ UInt64(length)
        var i = 0
        let n = tail.count
        if let p = tail.baseAddress {
            while i + 8 <= n {
                h ^= round(0, UInt64(littleEndian: p.loadUnaligned(fromByteOffset: i, as: UInt64.self)))
                h = rotl(h, 27) &* p1 &+ p4
                i += 8
            }
            if i + 4 <= n {
                h ^= UInt64(UInt32(littleEndian: p.loadUnaligned(fromByteOffset: i, as: UInt32.self))) &* p1
                h = rotl(h, 23) &* p2 &+ p3
                i += 4
            }
            while i < n {
                h ^= UInt64(tail[i]) &* p5
                h = rotl(h, 11) &* p1
                i += 1
            }
        }
        h ^= h >> 33
        h = h &* p2
        h ^= h >> 29
        h = h &* p3
        h ^= h >> 32
        return h
    }

    /// The hash of a sequence of 64-bit digests (little-endian bytes), for combining chunk hashes.
    public static func hash(digests: [UInt64], seed: UInt64 = 0) -> UInt64 {
        digests.map(\.littleEndian).withUnsafeBytes { hash($0, seed: seed) }
    }

    /// 16 lower-case hex digits.
    public static func hex(_ h: UInt64) -> String {
        let s = String(h, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
}
