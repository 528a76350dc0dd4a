import Dispatch
import Evaluation
import Inference
import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

enum EvalCommand {
    static let spec = CommandSpec(
        name: "eval",
        summary: "measure a model or a mix: perplexity, preference accuracy, KL to another model",
        positionals: [],
        options: SharedOptions.model + [
            OptionSpec(names: ["--text"], valueName: "FILE", help: "perplexity on a text file"),
            OptionSpec(
                names: ["--window"], valueName: "N",
                help: "--text: tokens a forward pass sees (default: the model's context)"),
            OptionSpec(
                names: ["--stride"], valueName: "N",
                help: "--text longer than the window: tokens scored per rolling window (default: window / 2)"),
            OptionSpec(
                names: ["--chunks"], valueName: "N",
                help: "--text as llama.cpp's llama-perplexity -c N scores it: chunks of N, each's second half"),
            OptionSpec(names: ["--quiet", "-q"], help: "no speed line on stderr"),
            OptionSpec(
                names: ["--pairs"], valueName: "FILE.jsonl",
                help: "preference accuracy on {\"prompt\",\"chosen\",\"rejected\"} lines"),
            OptionSpec(
                names: ["--ref"], valueName: "MODEL",
                help: "with --pairs: also the DPO implicit-reward accuracy against this reference"),
            OptionSpec(
                names: ["--levels"], valueName: "FILE.jsonl",
                help: "share of answers at each level: {\"prompt\", \"responses\": {LEVEL: …}} lines"),
        ] + SharedOptions.scoring + [
            OptionSpec(
                names: ["--kl-to"], valueName: "MODEL",
                help: "KL(MODEL ‖ this) of next-token distributions, with --prompts"),
            OptionSpec(names: ["--prompts"], valueName: "FILE", help: "one prompt a line, for --kl-to"),
            OptionSpec(
                names: ["--compare"], valueName: "MODEL",
                help: "also measure MODEL on the same inputs and test the differences (paired)"),
            SharedOptions.json("the results"), SharedOptions.help,
        ],
        discussion: """
            Log-probabilities of a completion are summed over its tokens given the prompt (tokenized apart).
            Levels: for each prompt, the level whose response scores highest wins (score: mean log-probability
            per response token, or --score sum; ties go to the level listed first); printed are the share of each
            level, its mean margin over the best other level, and with --json every prompt's winner and scores.
            Brackets are 95% intervals: Wilson score intervals for shares and accuracy, a seeded bootstrap over
            prompts for mean margins (48 prompts measure a share of 50% to about ±14 points). --compare MODEL
            measures MODEL on the same inputs and tests each difference: McNemar's exact test for accuracy and
            shares (which items each model got right), a seeded paired bootstrap for margins and perplexity.
            """,
        dynamicOptionsHelp: "with --base: the coefficient of domain DOMAIN (DIR/DOMAIN.av)")

    /// Parse → measure (`Measurements.run`) → print the lines or the JSON, and the speed on stderr.
    static func run(_ args: ParsedArguments) throws -> ExitCode {
        let a = try EvalArguments.parse(args)
        let lm = try ModelArguments.parse(args).load()
        let started = DispatchTime.now().uptimeNanoseconds
        let results = try a.measurements(for: lm).run(on: lm)
        print(a.json ? EvalReport.json(a, results).rendered(pretty: true) : EvalReport.text(a, results))
        if !a.quiet && !a.json {
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
            let tokens = lm.model.tokensEvaluated
            printError(
                String(
                    cFormat: "evaluated %ld tokens in %.2f s (%.1f tokens/s)", tokens, seconds,
                    seconds > 0 ? Double(tokens) / seconds : 0))
        }
        return .success
    }
}
