#!/usr/bin/env bash
# Fuzzes x402-verify-core with cargo-fuzz/libFuzzer on the STABLE toolchain.
#
#   ./run.sh TARGET [SECONDS] [-- LIBFUZZER_ARGS...]  fuzz TARGET (json, typed_data, typed_data_gen,
#                                                    signature, primitives, x402, store, authenticate, envelope,
#                                                    or all) for
#                                                    SECONDS (default 600)
#   ./run.sh cmin TARGET                              fold corpus-work/TARGET into the committed
#                                                    corpus/TARGET (only inputs that add coverage)
#   ./run.sh list                                     list the targets
#
# Environment: SANITIZER=none|address (default none: the core forbids unsafe code, so ASan
# mainly slows the run; `address` works on stable too), JOBS=N parallel libFuzzer jobs (default 1).
#
# New inputs go to corpus-work/TARGET (git-ignored); corpus/TARGET (committed, replayed by
# `cargo test -p x402-verify-core --test fuzz_corpus`) is only read, so a run never bloats it.
# Crashes land in artifacts/TARGET/.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"
TARGETS=(json typed_data typed_data_gen signature primitives x402 store authenticate envelope)
SANITIZER="${SANITIZER:-none}"
JOBS="${JOBS:-1}"

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

# cargo-fuzz, installed once if missing.
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "run.sh: installing cargo-fuzz" >&2
    cargo install --locked cargo-fuzz
fi
# cargo-fuzz passes -Z flags (sanitizer coverage); stable rustc takes them with RUSTC_BOOTSTRAP.
if ! rustc --version | grep -q nightly; then
    export RUSTC_BOOTSTRAP=1
fi
# Debug assertions and overflow checks on, like the shipped release profile (overflow-checks).
BUILD_FLAGS=(--release --debug-assertions --sanitizer "$SANITIZER")

is_target() { local t; for t in "${TARGETS[@]}"; do [[ "$t" == "$1" ]] && return 0; done; return 1; }

dict_args() {
    case "$1" in
        json) echo "-dict=$HERE/dicts/json.dict" ;;
        typed_data) echo "-dict=$HERE/dicts/typed_data.dict" ;;
        x402) echo "-dict=$HERE/dicts/x402.dict" ;;
        *) ;;
    esac
}

fuzz_one() {
    local target="$1" seconds="$2"; shift 2
    mkdir -p "corpus-work/$target" "artifacts/$target"
    local dict; dict="$(dict_args "$target")"
    echo "run.sh: fuzzing $target for ${seconds}s (sanitizer $SANITIZER, jobs $JOBS)" >&2
    local rc=0 jobs=()
    # libFuzzer's -jobs sends each job's output to fuzz-N.log; only used when asked for.
    (( JOBS > 1 )) && jobs=(-jobs="$JOBS" -workers="$JOBS")
    # First corpus dir receives new inputs; the committed one is read as seeds.
    cargo fuzz run "${BUILD_FLAGS[@]}" "$target" "corpus-work/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        ${dict:+"$dict"} "${jobs[@]}" "$@" || rc=$?
    if (( rc != 0 )); then
        echo "run.sh: $target FAILED (exit $rc). Crashing inputs:" >&2
        ls -l "artifacts/$target" >&2 || true
        echo "run.sh: minimize with: RUSTC_BOOTSTRAP=1 cargo fuzz tmin ${BUILD_FLAGS[*]} $target artifacts/$target/<file>" >&2
    fi
    return "$rc"
}

cmd="${1:-}"
[[ -n "$cmd" ]] || usage
case "$cmd" in
    -h|--help) usage ;;
    list) printf '%s\n' "${TARGETS[@]}" ;;
    cmin)
        target="${2:-}"; is_target "$target" || usage
        # Fold corpus-work/TARGET into corpus/TARGET: the committed files all stay (the named
        # seeds are checked by the tests); a new input is added only if it brings coverage the
        # corpus lacks, chosen by libFuzzer's greedy set cover (a smaller set than -merge=1).
        mkdir -p "corpus-work/$target"
        cargo fuzz build "${BUILD_FLAGS[@]}" "$target"
        bin="target/$(rustc -vV | sed -n 's/^host: //p')/release/$target"
        before=$(ls "corpus/$target" | wc -l)
        "$bin" -set_cover_merge=1 -timeout=10 -rss_limit_mb=2048 "corpus/$target" "corpus-work/$target" 2>&1 | grep -E '^MERGE-OUTER: [0-9]+ new files' || true
        echo "run.sh: corpus/$target: $before -> $(ls "corpus/$target" | wc -l) files, $(du -sh --apparent-size "corpus/$target" | cut -f1)" >&2
        ;;
    *)
        seconds="${2:-600}"
        shift; [[ $# -gt 0 ]] && shift
        [[ "${1:-}" == "--" ]] && shift
        [[ "$seconds" =~ ^[0-9]+$ ]] || usage
        if [[ "$cmd" == all ]]; then
            status=0
            for t in "${TARGETS[@]}"; do fuzz_one "$t" "$seconds" "$@" || status=1; done
            exit "$status"
        fi
        is_target "$cmd" || { echo "run.sh: unknown target $cmd (have: ${TARGETS[*]} all)" >&2; exit 2; }
        fuzz_one "$cmd" "$seconds" "$@"
        ;;
esac
