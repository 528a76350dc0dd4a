import Testing

@testable import Tensors

/// The string and path helpers that replace full Foundation's (av links only FoundationEssentials).
@Suite("Text and path helpers")
struct TextHelpersTests {
    @Test("cFormat formats as printf does")
    func cFormat() {
        #expect(String(cFormat: "%.3f", 1.0 / 3) == "0.333")
        #expect(String(cFormat: "%+.4f|%5.1f%%", -0.5, 12.34) == "-0.5000| 12.3%")
        #expect(String(cFormat: "%ld of %ld", 7, Int.max) == "7 of 9223372036854775807")
        #expect(String(cFormat: "<0x%02X>", 10) == "<0x0A>")
        #expect(String(cFormat: "%08X", UInt32(0x4655_4747)) == "46554747")
        #expect(String(cFormat: "") == "")
        #expect(String(cFormat: "%.1f", Float(2.25)) == "2.2")
    }

    @Test("trimming, replacing by bytes, padding")
    func strings() {
        #expect("  a b\t\n".trimmingWhitespace() == "a b")
        #expect("  a b\t\n".trimmingWhitespace(newlines: false) == "a b\t\n")
        #expect(" \n ".trimmingWhitespace() == "")
        #expect("\u{3000}x\u{00A0}".trimmingWhitespace() == "x")
        // "\r\n" is one Character; the byte-wise replacement still finds the "\r" in it.
        #expect("a\r\nb".replacingAll("\r", with: "%0D") == "a%0D\nb")
        #expect("aaa".replacingAll("aa", with: "b") == "ba")
        #expect("x".replacingAll("", with: "y") == "x")
        #expect("ab".padded(to: 4) == "ab  ")
        #expect("abcdef".padded(to: 4) == "abcdef")
    }

    @Test("path arithmetic as NSString did it")
    func paths() {
        #expect(Path.join("a", "b") == "a/b")
        #expect(Path.join("a/", "b") == "a/b")
        #expect(Path.join("", "b") == "b")
        #expect(Path.parent("a/b/c") == "a/b")
        #expect(Path.parent("a/b/") == "a")
        #expect(Path.parent("c") == "")
        #expect(Path.parent("/c") == "/")
        #expect(Path.parent("/") == "/")
        #expect(Path.lastComponent("a/b/") == "b")
        #expect(Path.lastComponent("b") == "b")
        #expect(Path.isDirectory("/") == true)
        #expect(Path.isDirectory("/definitely/not/here") == nil)
        #expect(Path.fileSize("/definitely/not/here") == nil)
    }
}
