#!/usr/bin/env bash
# Build and run a libFuzzer target.
#
#   Fuzz/run.sh TARGET SECONDS [libFuzzer options...]
#   Fuzz/run.sh metadata 600
#   Fuzz/run.sh receive 600
#   Fuzz/run.sh config 3600 -timeout=5
#   Fuzz/run.sh reassembly 300
#   Fuzz/run.sh icmp 600
#
# Each target is one swiftc invocation over the Swift sources it needs plus its harness in
# Fuzz/TARGET/, built with -sanitize=fuzzer,address into .build-fuzz/TARGET (outside the
# SwiftPM build, so `swift build` / `swift test` never see it). Seeds are read from
# Fuzz/corpus/TARGET (committed, small); inputs libFuzzer finds go to fuzz-out/TARGET/corpus and
# crash/leak/timeout artifacts to fuzz-out/TARGET/ (both git-ignored).
#
# SWIFTC_FLAGS adds compiler flags (e.g. SWIFTC_FLAGS=-DRECEIVE_TRACE for the receive harness's
# step trace).
#
# `Fuzz/run.sh receive-seeds 0` regenerates Fuzz/corpus/receive (sealed spec packets).
#
# Adding a target: add a case below with its sources and any extra flags (for code that uses
# OpenSSL: flags=(-I Sources/COpenSSL -lcrypto)), a harness in Fuzz/TARGET/ that defines
# LLVMFuzzerTestOneInput with @_cdecl, and seeds in Fuzz/corpus/TARGET/.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $# -lt 2 ]]; then
    echo "usage: $0 TARGET SECONDS [libFuzzer options...]   (targets: metadata, receive, config, reassembly, icmp)" >&2
    exit 2
fi
target=$1
seconds=$2
shift 2

flags=()
seeds=()  # more seed directories, only read
case "$target" in
receive-seeds)
    # Not a fuzz target: builds and runs the seed generator of `receive` (SECONDS unused).
    mkdir -p .build-fuzz/cshim-plain
    printf 'module CShim {\n    umbrella header "%s/Sources/CShim/include/CShim.h"\n    export *\n}\n' "$PWD" > .build-fuzz/cshim-plain/module.modulemap
    clang -c -O2 -I Sources/CShim/include Sources/CShim/hmac.c -o .build-fuzz/cshim-plain/hmac.o
    swiftc -swift-version 6 -parse-as-library -O -module-name ReceiveSeeds Sources/SVR/Common/*.swift Sources/SVR/Metadata/*.swift \
        Sources/SVR/Packet/*.swift Sources/SVR/Crypto/*.swift Fuzz/receive/ReceiveFixture.swift \
        Fuzz/receive-seeds/*.swift -I Sources/COpenSSL -I .build-fuzz/cshim-plain .build-fuzz/cshim-plain/hmac.o -lcrypto \
        -o .build-fuzz/receive-seeds
    mkdir -p Fuzz/corpus/receive
    exec .build-fuzz/receive-seeds Fuzz/corpus/receive
    ;;
metadata)
    sources=(Sources/SVR/Common/IPAddress.swift Sources/SVR/Metadata/*.swift Fuzz/metadata/*.swift)
    ;;
icmp)
    sources=(Sources/SVR/Common/IPAddress.swift Sources/SVR/Packet/*.swift Sources/SVR/Engine/ICMPError.swift
             Sources/SVR/Engine/EngineWire.swift Fuzz/icmp/*.swift)
    ;;
receive)
    sources=(Sources/SVR/Common/*.swift Sources/SVR/Metadata/*.swift Sources/SVR/Packet/*.swift
             Sources/SVR/Crypto/*.swift Fuzz/receive/*.swift)
    flags=(-I Sources/COpenSSL -lcrypto)
    ;;
config)
    sources=(Sources/SVR/Common/IPAddress.swift Sources/SVR/Crypto/*.swift Sources/SVR/Config/*.swift
             Fuzz/config/*.swift)
    flags=(-I Sources/COpenSSL -lcrypto)
    seeds=(deploy/examples)  # the example configs (and lab/), besides Fuzz/corpus/config
    ;;
reassembly)
    sources=(Sources/SVR/Common/*.swift Sources/SVR/Packet/*.swift Sources/SVR/Session/*.swift Sources/SVR/Engine/EngineContract.swift
             Sources/SVR/Engine/Reassembly.swift Fuzz/reassembly/*.swift)
    ;;
*)
    echo "unknown fuzz target '$target' (targets: metadata, receive, config, reassembly, icmp)" >&2
    exit 2
    ;;
esac

bin=.build-fuzz/$target
out=fuzz-out/$target
mkdir -p .build-fuzz "$out/corpus" "Fuzz/corpus/$target"

if [[ $target == receive || $target == config || $target == reassembly ]]; then
    # CShim (the C helpers the crypto code calls: HMAC, prefetch) for swiftc: a module map over
    # its umbrella header, and hmac.c compiled with the same sanitizers.
    cshim=.build-fuzz/cshim
    mkdir -p "$cshim"
    printf 'module CShim {\n    umbrella header "%s/Sources/CShim/include/CShim.h"\n    export *\n}\n' "$PWD" > "$cshim/module.modulemap"
    clang -c -O2 -g -fsanitize=fuzzer-no-link,address -I Sources/CShim/include Sources/CShim/hmac.c -o "$cshim/hmac.o"
    flags+=(-I "$cshim" "$cshim/hmac.o")
fi

if [[ $target == config ]]; then
    # TOMLKit and its C++ core (toml++) from SwiftPM's checkout, built with the same
    # sanitizers: the C++ objects, and the Swift module as a static library.
    [[ -d .build/checkouts/TOMLKit ]] || swift package resolve
    tk=.build/checkouts/TOMLKit/Sources
    tomlkit=.build-fuzz/tomlkit
    mkdir -p "$tomlkit"
    if [[ ! -f $tomlkit/libTOMLKit.a ]]; then
        for f in "$tk"/CTOML/Sources/*.cpp; do
            o=$tomlkit/$(basename "${f%.cpp}" | tr -c 'A-Za-z0-9_\n' _).o
            clang++ -c -std=c++17 -O1 -g -fsanitize=fuzzer-no-link,address -DTOML_EXCEPTIONS=1 \
                -I "$tk/CTOML/include" -I "$tk/CTOML/Sources" "$f" -o "$o"
        done
        swiftc -parse-as-library -O -g -suppress-warnings -sanitize=fuzzer,address -module-name TOMLKit \
            -I "$tk/CTOML/include/CTOML" -emit-module -emit-module-path "$tomlkit/TOMLKit.swiftmodule" \
            -emit-library -static -o "$tomlkit/libTOMLKit.a" "$tk"/TOMLKit/*.swift "$tk"/TOMLKit/*/*.swift "$tk"/TOMLKit/*/*/*.swift
    fi
    flags+=(-I "$tomlkit" -I "$tk/CTOML/include/CTOML" -L "$tomlkit" -lTOMLKit "$tomlkit"/*.o -lstdc++)
fi

echo "building $bin" >&2
swiftc -swift-version 6 -sanitize=fuzzer,address -parse-as-library -O -g -use-ld=lld -module-name "Fuzz_$target" \
    "${sources[@]}" "${flags[@]}" ${SWIFTC_FLAGS:-} -o "$bin"

# New inputs go to the first corpus directory; the committed seeds are only read.
exec "$bin" "$out/corpus" "Fuzz/corpus/$target" ${seeds[@]+"${seeds[@]}"} \
    -max_total_time="$seconds" -artifact_prefix="$out/" -print_final_stats=1 "$@"
