import Testing

@testable import Tensors

/// XXH64 against the reference implementation's values (Python `xxhash` 3), whole and streamed.
@Suite("XXH64")
struct XXHash64Tests {
    static let pattern: [UInt8] = Array((0..<5).flatMap { _ in (0...255).map(UInt8.init) })
    /// (input, seed 0, seed 7), from `xxhash.xxh64(s, seed).intdigest()`.
    static let known: [([UInt8], UInt64, UInt64)] = [
        ([], 0xEF46_DB37_51D8_E999, 0x95F0_626F_6F0A_4409),
        (Array("a".utf8), 0xD24E_C4F1_A98C_6E5B, 0xDC63_49D4_89E0_F965),
        (Array("abc".utf8), 0x44BC_2CF5_AD77_0999, 0x9E75_5206_1566_76D7),
        (Array("Nobody inspects the spammish repetition".utf8), 0xFBCE_A83C_8A37_8BF1, 0x26F1_AEB3_9B9B_1F5F),
        (pattern, 0xAFC1_84AD_7938_A354, 0x133C_F6CA_9D1C_1256),
    ]

    @Test("known values, seeds 0 and 7")
    func knownValues() {
        for (input, h0, h7) in Self.known {
            input.withUnsafeBytes { b in
                #expect(XXHash64.hash(b) == h0, "\(input.count) bytes")
                #expect(XXHash64.hash(b, seed: 7) == h7, "\(input.count) bytes, seed 7")
            }
        }
    }

    @Test("a stream fed whole stripes then any rest gives the one-shot hash")
    func streamed() {
        Self.pattern.withUnsafeBytes { all in
            for split in [0, 32, 64, 640, 1248, 1280] {
                for stripes in [1, 3] where split % (32 * stripes) == 0 {
                    var s = XXHash64.Stream(seed: 7)
                    var at = 0
                    while at < split {
                        s.update(UnsafeRawBufferPointer(rebasing: all[at..<min(split, at + 32 * stripes)]))
                        at += 32 * stripes
                    }
                    #expect(s.finish(UnsafeRawBufferPointer(rebasing: all[split...])) == 0x133C_F6CA_9D1C_1256)
                }
            }
            // Short inputs (< 32 bytes in all) take the other path of the final mix.
            var short = XXHash64.Stream()
            #expect(short.finish(UnsafeRawBufferPointer(rebasing: all[..<0])) == 0xEF46_DB37_51D8_E999)
        }
    }
}
