#!/usr/bin/env bash
# Fuzz the parsers that read untrusted input: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Targets (fuzz/fuzz_targets/): config_parser, image_reference, chart_archive. Not run in CI.
# cargo-fuzz needs nightly-only flags (-Zsanitizer); on a stable toolchain RUSTC_BOOTSTRAP=1
# unlocks them. Findings land in fuzz/artifacts/<target>/ (reproduce with
# `RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <file>`), the growing corpus in fuzz/corpus/.
set -euo pipefail

seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config_parser image_reference chart_archive)

cd "$(dirname "$0")/../fuzz"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${LAZYOCI_FUZZ_TARGET_DIR:-$PWD/target}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

status=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  echo "== $t: ${seconds}s"
  # New inputs go to corpus/$t (the first directory), seeds are only read. An input that
  # takes over 2 s or 2 GiB counts as a finding.
  if ! cargo fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
      -max_total_time="$seconds" -timeout=2 -rss_limit_mb=2048 -print_final_stats=1; then
    echo "!! $t found a problem; see fuzz/artifacts/$t/"
    status=1
  fi
done
exit $status
