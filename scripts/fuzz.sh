#!/bin/sh
# Builds and runs the libFuzzer targets, each for a bounded time.
#   scripts/fuzz.sh [seconds] [target...]      (default: 60 seconds, every target)
# Crashes land in fuzz-out/<target>/. To add a target: a Fuzz/<File>.swift defining LLVMFuzzerTestOneInput,
# then one line in `targets` below: "name:modules-it-needs:entry-file:seed-dirs".
set -eu
cd "$(dirname "$0")/.."
seconds=${1:-60}
[ $# -gt 0 ] && shift
targets="
files:PacketWire,CSystem,SystemCalls,PacketFiles:Fuzz/FuzzFiles.swift:Tests/Fixtures
decoder:PacketWire,Timeline,Render:Fuzz/FuzzDecoder.swift:Tests/Fixtures
netlink:PacketWire,CSystem,SystemCalls,Sockets:Fuzz/FuzzNetlink.swift:Tests/Fixtures/netlink
read:PacketWire,CSystem,SystemCalls,PacketFiles,Timeline,Render:Fuzz/FuzzRead.swift:Tests/Fixtures
"
build=.build-fuzz
flags="-sanitize=fuzzer,address -parse-as-library -O -g"
mkdir -p "$build"

# Each module is compiled once, instrumented, as its own object and .swiftmodule so the targets can import it,
# and again when its sources or a module it imports (listed before it) changed: an object built against an old
# layout of another module's types corrupts memory. (sh functions share their variables with the caller: this one
# must not touch run_target's `name`.)
build_module() { # module [modules it imports...]
    module=$1
    shift
    if [ -d Sources/"$module"/include ]; then
        build_c_module "$module"
        return
    fi
    stale=$(find Sources/"$module" -newer "$build/$module.o" -name '*.swift' 2>/dev/null)
    for dependency in "$@"; do [ "$build/$dependency.o" -nt "$build/$module.o" ] && stale=yes; done
    [ -f "$build/$module.o" ] && [ -z "$stale" ] && return
    echo "building $module" >&2
    swiftc $flags -wmo -c -module-name "$module" -I "$build" $(c_module_paths) \
        -emit-module -emit-module-path "$build/$module.swiftmodule" \
        Sources/"$module"/*.swift -o "$build/$module.o"
    # swiftc leaves an output it would write unchanged untouched; the time says when it was last checked.
    touch "$build/$module.o"
}

# The module maps of the C targets built so far, for swiftc.
c_module_paths() {
    for map in "$build"/*-map; do [ -d "$map" ] && printf ' -I %s' "$map"; done
}

# A C target (a shim such as CSystem): its object, instrumented, and a module map that lets Swift import its header.
build_c_module() { # module
    module=$1
    stale=$(find Sources/"$module" -newer "$build/$module.o" 2>/dev/null)
    [ -f "$build/$module.o" ] && [ -z "$stale" ] && return
    echo "building $module" >&2
    mkdir -p "$build/$module-map"
    header=$(cd Sources/"$module"/include && pwd)/$module.h
    printf 'module %s {\n    header "%s"\n    export *\n}\n' "$module" "$header" >"$build/$module-map/module.modulemap"
    clang -fsanitize=fuzzer-no-link,address -O1 -g -I Sources/"$module"/include \
        -c Sources/"$module"/*.c -o "$build/$module.o"
    touch "$build/$module.o"
}

run_target() { # name modules entry seeds
    name=$1; modules=$2; entry=$3; seeds=$4
    objects=""
    built=""
    for m in $(echo "$modules" | tr ',' ' '); do
        # shellcheck disable=SC2086
        build_module "$m" $built
        built="$built $m"
        objects="$objects $build/$m.o"
    done
    # shellcheck disable=SC2086
    swiftc $flags -I "$build" $(c_module_paths) "$entry" $objects -o "$build/fuzz-$name"
    corpus=$(mktemp -d)
    for d in $(echo "$seeds" | tr ',' ' '); do find "$d" -type f -exec cp {} "$corpus"/ \; ; done
    mkdir -p "fuzz-out/$name"
    echo "fuzzing $name for ${seconds}s (seed corpus: $(ls "$corpus" | wc -l) files)" >&2
    status=0
    "$build/fuzz-$name" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 \
        -artifact_prefix="fuzz-out/$name/" "$corpus" || status=$?
    rm -rf "$corpus"
    return $status
}

failed=0
for spec in $targets; do
    name=${spec%%:*}
    if [ $# -gt 0 ]; then case " $* " in *" $name "*) ;; *) continue ;; esac; fi
    rest=${spec#*:}; modules=${rest%%:*}
    rest=${rest#*:}; entry=${rest%%:*}; seeds=${rest#*:}
    run_target "$name" "$modules" "$entry" "$seeds" || { echo "fuzz target $name FAILED" >&2; failed=1; }
done
exit $failed
