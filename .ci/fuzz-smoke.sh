#!/usr/bin/env bash
# Fuzz smoke run: every cargo-fuzz target in the repository (each `fuzz/` directory with a
# Cargo.toml) runs for FUZZ_SECONDS seconds (default 10), seeded from its committed
# `seeds/<target>/` and using `<target>.dict` or `fuzz.dict` when present.
# Exits non-zero when a target fails to build or finds a crash; libFuzzer then leaves the
# input in `fuzz/artifacts/<target>/`.
#
# Environment:
#   FUZZ_SECONDS    seconds per target (default 10)
#   FUZZ_TARGETS    space-separated target names to run (default: all)
#   FUZZ_SANITIZER  cargo-fuzz sanitizer (default: address with nightly, none without)
#   FUZZ_TARGET_DIR build directory shared by every fuzz crate (default: target/fuzz), so the
#                   dependencies they have in common (aws-lc among them) are built once
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=${FUZZ_SECONDS:-10}
target_dir=${FUZZ_TARGET_DIR:-$root/target/fuzz}

# cargo-fuzz itself (a registry package).
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz-smoke: installing cargo-fuzz" >&2
    (cd / && cargo install cargo-fuzz --locked --version '^0.13')
fi

# libFuzzer instrumentation needs nightly features. Prefer an installed nightly; otherwise use
# the repository's pinned toolchain with RUSTC_BOOTSTRAP and no sanitizer.
toolchain_args=()
if rustup run nightly rustc --version >/dev/null 2>&1; then
    toolchain_args=(+nightly)
    sanitizer=${FUZZ_SANITIZER:-address}
else
    echo "fuzz-smoke: no nightly toolchain; using the pinned toolchain with RUSTC_BOOTSTRAP=1" >&2
    export RUSTC_BOOTSTRAP=1
    sanitizer=${FUZZ_SANITIZER:-none}
fi

mapfile -t fuzz_dirs < <(find "$root/crates" "$root/bin" -type d -name fuzz \
    -not -path '*/target/*' -exec test -f '{}/Cargo.toml' ';' -print 2>/dev/null | sort)
if [ "${#fuzz_dirs[@]}" -eq 0 ]; then
    echo "fuzz-smoke: no fuzz directories found" >&2
    exit 1
fi

failed=()
ran=0
for dir in "${fuzz_dirs[@]}"; do
    rel=${dir#"$root"/}
    cd "$dir"
    echo "=== $rel: building (sanitizer $sanitizer)"
    if ! cargo "${toolchain_args[@]}" fuzz build -s "$sanitizer" --target-dir "$target_dir"; then
        failed+=("$rel (build)")
        continue
    fi
    mapfile -t targets < <(cargo "${toolchain_args[@]}" fuzz list)
    for target in "${targets[@]}"; do
        if [ -n "${FUZZ_TARGETS:-}" ] && [[ " $FUZZ_TARGETS " != *" $target "* ]]; then
            continue
        fi
        corpora=("corpus/$target")
        mkdir -p "corpus/$target"
        [ -d "seeds/$target" ] && corpora+=("seeds/$target")
        libfuzzer_args=("-max_total_time=$seconds" "-print_final_stats=1")
        if [ -f "$target.dict" ]; then
            libfuzzer_args+=("-dict=$target.dict")
        elif [ -f fuzz.dict ]; then
            libfuzzer_args+=("-dict=fuzz.dict")
        fi
        echo "=== $rel: $target for ${seconds}s"
        log=$(mktemp)
        if cargo "${toolchain_args[@]}" fuzz run -s "$sanitizer" --target-dir "$target_dir" "$target" "${corpora[@]}" \
            -- "${libfuzzer_args[@]}" >"$log" 2>&1; then
            grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
        else
            tail -n 60 "$log"
            failed+=("$rel/$target")
        fi
        rm -f "$log"
        ran=$((ran + 1))
    done
done

if [ "${#failed[@]}" -ne 0 ]; then
    echo "fuzz-smoke: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz-smoke: $ran targets ran ${seconds}s each without a crash"
