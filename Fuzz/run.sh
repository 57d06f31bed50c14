#!/usr/bin/env bash
# Build and run a libFuzzer target.
#
#   Fuzz/run.sh TARGET SECONDS [libFuzzer options...]
#   Fuzz/run.sh metadata 600
#
# Each target is one swiftc invocation over the Swift sources it needs plus its harness in
# Fuzz/TARGET/, built with -sanitize=fuzzer,address into .build-fuzz/TARGET (outside the
# SwiftPM build, so `swift build` / `swift test` never see it). Seeds are read from
# Fuzz/corpus/TARGET (committed, small); inputs libFuzzer finds go to fuzz-out/TARGET/corpus and
# crash/leak/timeout artifacts to fuzz-out/TARGET/ (both git-ignored).
#
# Adding a target: add a case below with its sources and any extra flags (for code that uses
# OpenSSL: flags=(-I Sources/COpenSSL -lcrypto)), a harness in Fuzz/TARGET/ that defines
# LLVMFuzzerTestOneInput with @_cdecl, and seeds in Fuzz/corpus/TARGET/.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $# -lt 2 ]]; then
    echo "usage: $0 TARGET SECONDS [libFuzzer options...]   (targets: metadata)" >&2
    exit 2
fi
target=$1
seconds=$2
shift 2

flags=()
case "$target" in
metadata)
    sources=(Sources/SVR/Common/IPAddress.swift Sources/SVR/Metadata/*.swift Fuzz/metadata/*.swift)
    ;;
*)
    echo "unknown fuzz target '$target' (targets: metadata)" >&2
    exit 2
    ;;
esac

bin=.build-fuzz/$target
out=fuzz-out/$target
mkdir -p .build-fuzz "$out/corpus" "Fuzz/corpus/$target"

echo "building $bin" >&2
swiftc -sanitize=fuzzer,address -parse-as-library -O -g -use-ld=lld -module-name "Fuzz_$target" \
    "${sources[@]}" "${flags[@]}" -o "$bin"

# New inputs go to the first corpus directory; the committed seeds are only read.
exec "$bin" "$out/corpus" "Fuzz/corpus/$target" \
    -max_total_time="$seconds" -artifact_prefix="$out/" -print_final_stats=1 "$@"
