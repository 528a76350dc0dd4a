import AVTestSupport
import Foundation
import Testing

/// PEFT adapters through the command line: `av diff BASE ADAPTER`, `--adapter` for generate and eval.
@Suite("PEFT adapters on the command line")
struct AdapterCLITests {
    func adapterFixture(_ path: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("AlignmentVectorsTests/Fixtures/adapters/\(path)").path
    }

    struct Reference: Decodable {
        var prompt: String
        var ids: [Int]
        var new_text: String
    }

    @Test("generate --adapter gives PEFT's greedy text; diff + merge of the adapter gives the same model")
    func generateWithAdapter() throws {
        let dir = TemporaryDirectory()
        let chat = inferenceFixture("chat")
        let adapter = adapterFixture("chat/adapter")
        let data = try Data(contentsOf: URL(fileURLWithPath: adapterFixture("chat/reference.json")))
        let reference = try JSONDecoder().decode(Reference.self, from: data)
        let common = ["generate", "--prompt", reference.prompt, "--max-tokens", "10", "-q"]
        let adapted = try runAV(common + ["--model", chat, "--adapter", adapter])
        #expect(adapted.status == 0, "\(adapted.stderr)")
        #expect(adapted.stdout == reference.new_text + "\n")  // generate ends its output with a newline
        let plain = try runAV(common + ["--model", chat])
        #expect(plain.stdout != adapted.stdout)

        let diff = try runAV(["diff", chat, adapter, "-o", dir.file("style.av"), "-q"])
        #expect(diff.status == 0, "\(diff.stderr)")
        #expect(diff.stdout.contains("adapter  LoRA r 4, lora_alpha 8"))
        let merge = try runAV([
            "merge", "--base", chat, "--vectors", dir.path, "--style", "1", "-o", dir.file("m"), "-q",
        ])
        #expect(merge.status == 0, "\(merge.stderr)")
        let merged = try runAV(common + ["--model", dir.file("m")])
        #expect(merged.stdout == adapted.stdout)
        let eval = try runAV([
            "eval", "--model", chat, "--adapter", adapter, "--text", adapterFixture("chat/reference.json"),
        ])
        let evalMerged = try runAV(["eval", "--model", dir.file("m"), "--text", adapterFixture("chat/reference.json")])
        #expect(eval.status == 0 && eval.stdout == evalMerged.stdout)
        let inspect = try runAV(["inspect", dir.file("style.av")])
        #expect(inspect.stdout.contains("adapter"))
        let folder = try runAV(["inspect", adapter])
        #expect(
            folder.stdout.contains("(PEFT adapter, 1 file)")
                && folder.stdout.contains("LoRA r 4, lora_alpha 8: 6 modules"))
    }

    @Test("--adapter refuses what is not an adapter and goes only with --model")
    func refusals() throws {
        let dir = TemporaryDirectory()
        let chat = inferenceFixture("chat")
        let notAdapter = try runAV(["generate", "--model", chat, "--adapter", chat, "--prompt", "Hi"])
        #expect(notAdapter.status == 2)
        #expect(notAdapter.stderr.contains("not a PEFT adapter directory"))
        let mixed = try runAV([
            "generate", "--base", chat, "--vector", "x.av=1", "--adapter", adapterFixture("chat/adapter"), "--prompt",
            "Hi",
        ])
        #expect(mixed.status == 2)
        let wrongBase = try runAV([
            "diff", chat, adapterFixture("fan_in_fan_out/adapter"), "-o", dir.file("never.av"),
        ])
        #expect(wrongBase.status == 3)
        #expect(wrongBase.stderr.contains("adapter_model.safetensors") && wrongBase.stderr.contains("does not have"))
        #expect(!FileManager.default.fileExists(atPath: dir.file("never.av")))
    }
}

@Suite("av export-lora")
struct ExportLoRACLITests {
    @Test("exports, reports ranks, energy and KL, reads back as an adapter; bad flags are usage errors")
    func exportLoRA() throws {
        let dir = TemporaryDirectory()
        let chat = inferenceFixture("chat")
        let adapter = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("AlignmentVectorsTests/Fixtures/adapters/chat/adapter").path
        #expect(try runAV(["diff", chat, adapter, "-o", dir.file("style.av"), "-q"]).status == 0)
        try "The court said\nWhat is a contract?\n".write(toFile: dir.file("p.txt"), atomically: true, encoding: .utf8)
        let r = try runAV([
            "export-lora", dir.file("style.av"), "-o", dir.file("ex"), "--rank", "4", "--skip", "--base", chat,
            "--prompts", dir.file("p.txt"),
        ])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("6 matrices, rank 4–4, keeping 100.0% of ‖Δ‖²"))
        #expect(r.stdout.contains("kl        mean 0.0000"))
        let low = try runAV([
            "export-lora", dir.file("style.av"), "-o", dir.file("low"), "--rank", "1", "--skip", "--json",
        ])
        #expect(low.status == 0)
        #expect(low.stdout.contains("\"retainedEnergy\""))
        // The exported adapter is an adapter av reads: generate with it gives the original adapter's text.
        let common = ["generate", "--model", chat, "--prompt", "The court said", "--max-tokens", "10", "-q"]
        #expect(
            try runAV(common + ["--adapter", dir.file("ex")]).stdout == runAV(common + ["--adapter", adapter]).stdout)
        for bad in [
            ["--rank", "0"], ["--energy", "1.5"], ["--rank", "2", "--energy", "0.5"], ["--prompts", dir.file("p.txt")],
        ] {
            let b = try runAV(["export-lora", dir.file("style.av"), "-o", dir.file("bad"), "--skip"] + bad)
            #expect(b.status == 2, "\(bad)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.file("bad")))
        // An output that holds other files is refused, as every directory output is.
        try FileManager.default.createDirectory(atPath: dir.file("busy"), withIntermediateDirectories: true)
        try "keep".write(toFile: dir.file("busy/notes.txt"), atomically: true, encoding: .utf8)
        let busy = try runAV(["export-lora", dir.file("style.av"), "-o", dir.file("busy"), "--skip"])
        #expect(busy.status == 3)
        #expect(FileManager.default.fileExists(atPath: dir.file("busy/notes.txt")))
    }
}
