import AVTestSupport
import Foundation
import Testing

@testable import SafeTensors

/// `replaceDirectory`: which way a finished directory goes in, and what a reader sees meanwhile.
@Suite("Directory replacement")
struct DirectoryExchangeTests {
    /// A directory at `path` holding `model.safetensors` with `text`.
    func directory(_ path: String, _ text: String) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: path + "/model.safetensors"))
    }

    func contents(_ path: String) -> String? {
        FileManager.default.contents(atPath: path + "/model.safetensors").map { String(decoding: $0, as: UTF8.self) }
    }

    @Test("an existing directory is exchanged in one step, and a reader never finds the destination empty")
    func exchanged() throws {
        let dir = TemporaryDirectory()
        let out = dir.file("merged")
        try directory(out, "old")
        try directory(dir.file("t0"), "v0")
        #expect(try replaceDirectory(out, with: dir.file("t0")) == .exchanged)
        #expect(contents(out) == "v0")
        // A watcher reading the file between rounds of replacement: with the exchange it always finds one.
        nonisolated(unsafe) var missing = 0
        nonisolated(unsafe) var looks = 0
        nonisolated(unsafe) var stop = false
        let watcher = Thread {
            while !stop {
                looks += 1
                if FileKind(of: out + "/model.safetensors") != .regular { missing += 1 }
            }
        }
        watcher.start()
        for i in 1...200 {
            try directory(dir.file("t\(i)"), "v\(i)")
            #expect(try replaceDirectory(out, with: dir.file("t\(i)")) == .exchanged)
        }
        stop = true
        while !watcher.isFinished { usleep(1000) }
        #expect(looks > 100 && missing == 0, "\(missing) of \(looks) looks found no model")
        #expect(contents(out) == "v200")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["merged"])
    }

    @Test("the fallback moves the old directory aside and the new one in, leaving nothing behind")
    func fallback() throws {
        let dir = TemporaryDirectory()
        let out = dir.file("merged")
        try directory(out, "old")
        try directory(dir.file("t"), "new")
        #expect(try replaceDirectory(out, with: dir.file("t"), exchange: false) == .movedAside)
        #expect(contents(out) == "new")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["merged"])
        // Nothing there: one rename.
        try directory(dir.file("u"), "first")
        #expect(try replaceDirectory(dir.file("fresh"), with: dir.file("u")) == .renamed)
        #expect(contents(dir.file("fresh")) == "first")
    }
}
