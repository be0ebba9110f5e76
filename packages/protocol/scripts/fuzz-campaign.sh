#!/usr/bin/env bash
# Coverage-guided fuzzing campaign for both decoders (docs/security.md, "Fuzzing"); not run in CI.
#   npm run fuzz                      # 900 s per decoder, STOMP then native, one at a time
#   npm run fuzz -- 60                # 60 s per decoder
#   npm run fuzz -- 900 native        # one decoder
# New coverage-increasing inputs land in packages/protocol/fuzz/corpus/<target>/ (merged back to the
# inputs that each add coverage at the end), findings in packages/protocol/fuzz/crashes/<target>/.
# Both directories are replayed by packages/protocol/src/fuzz/fuzz-corpus.test.ts in CI.
set -euo pipefail
cd "$(dirname "$0")/../../.."
seconds="${1:-900}"
shift || true
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(stomp native)
npx turbo run build --filter=@keel/protocol --output-logs=errors-only >/dev/null
status=0
for target in "${targets[@]}"; do
  echo "== fuzzing $target for ${seconds}s (nice -n 10, $(nproc) cores, node $(node --version))" >&2
  # The machine is shared: low priority, and a hard bound in case the process wedges.
  timeout --signal=KILL "$((seconds + 300))" nice -n 10 \
    node packages/protocol/dist/fuzz/main.js "$target" --seconds "$seconds" || status=$?
  node packages/protocol/dist/fuzz/main.js "$target" --merge
done
exit "$status"
