#!/usr/bin/env bash
# Build what `make fuzz-native` runs, into OUTDIR (the installed tether is
# left alone):
#   OUTDIR/tether/           a copy of the package whose _speedups is built by
#                            clang with AddressSanitizer, UndefinedBehaviorSanitizer
#                            and libFuzzer's coverage counters (-fsanitize=fuzzer-no-link);
#   OUTDIR/asan_with_fuzzer.so  the ASan runtime with libFuzzer linked in, to
#                            preload: atheris then drives that libFuzzer, which
#                            sees the extension's coverage (atheris's "native
#                            extension fuzzing"; its wheels do not ship this file).
# Usage: fuzz/native.sh PYTHON OUTDIR
set -euo pipefail

python="$1"
out="$2"
cd "$(dirname "$0")/.."

runtime="$(clang -print-runtime-dir)"

# clang names its runtimes by architecture (up to 14) or keeps them in a
# directory per target triple (15 on).
runtime_lib() {
    for name in "libclang_rt.$1-x86_64.a" "libclang_rt.$1.a"; do
        if [ -f "$runtime/$name" ]; then
            echo "$runtime/$name"
            return
        fi
    done
    echo "fuzz/native.sh: no libclang_rt.$1 in $runtime (Debian: libclang-rt-dev)" >&2
    exit 1
}

asan="$(runtime_lib asan)"
fuzzer="$(runtime_lib fuzzer_no_main)"

mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# A shared library cannot have a .preinit_array, so ASan's pre-init object
# stays out; preloading the library starts ASan early enough instead.
cp "$asan" "$work/asan.a"
preinit="$(ar t "$work/asan.a" | grep preinit || true)"
if [ -n "$preinit" ]; then
    # shellcheck disable=SC2086 # one or more member names
    ar d "$work/asan.a" $preinit
fi
clang++ -shared -o "$out/asan_with_fuzzer.so" \
    -Wl,--whole-archive "$fuzzer" "$work/asan.a" -Wl,--no-whole-archive \
    -lpthread -ldl -lrt -lm

include="$("$python" -c 'import sysconfig; print(sysconfig.get_path("include"))')"
suffix="$("$python" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')"
rm -rf "$out/tether"
cp -R src/tether "$out/tether"
rm -f "$out"/tether/_speedups*.so
find "$out/tether" -name __pycache__ -prune -exec rm -rf {} +
clang -shared -fPIC -O1 -g -fno-omit-frame-pointer -Wall \
    -fsanitize=address,undefined,fuzzer-no-link -fno-sanitize-recover=undefined \
    -I"$include" src/tether/_speedups.c -lz -o "$out/tether/_speedups$suffix"
