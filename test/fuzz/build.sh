#!/usr/bin/env bash
# Builds cloudha's fuzzers with clang's libFuzzer, AddressSanitizer and
# UndefinedBehaviorSanitizer, against the same Debian -dev libraries as the
# Bazel build (flags from pkg-config), into a folder outside the tree.
#
#   test/fuzz/build.sh [--out DIR] [--seeds]
#
#   --out DIR  where objects, generated protos and binaries go (default
#              ${XDG_CACHE_HOME:-~/.cache}/cloudha/fuzz); binaries in DIR/bin
#   --seeds    also build make_seeds and rewrite the seed-* inputs of
#              test/fuzz/corpus/ and the dictionaries it generates
#              (agent_config, hello, config_follower, session_replica)
#
# Prints DIR/bin. Exit status 2 (with the reason on stderr) when clang or
# libFuzzer is missing, 1 when the build fails.
#
# Why a script and not Bazel: Bazel 4's C++ toolchain is the one
# auto-configured from gcc, which has no libFuzzer and no
# -fsanitize-coverage=inline-8bit-counters; a clang toolchain beside it needs
# platform-based toolchain resolution and a transition for every library a
# fuzzer links, for targets that are clang-only anyway. This script compiles
# the few sources each fuzzer needs with clang++ and caches the objects by
# content (the source, every header of the tree it includes, the flags),
# so a run after a small change recompiles only what changed.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=
seeds=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --seeds) seeds=1; shift ;;
    *) echo "usage: $0 [--out DIR] [--seeds]" >&2; exit 1 ;;
  esac
done

if [[ -z "$out" ]]; then
  home=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
  out=${XDG_CACHE_HOME:-$home/.cache}/cloudha/fuzz
fi

cxx=${CLOUDHA_FUZZ_CXX:-clang++}
if ! command -v "$cxx" >/dev/null 2>&1; then
  echo "$cxx is missing: apt-get install clang libclang-rt-dev" >&2
  exit 2
fi
for tool in protoc pkg-config sha256sum flock; do
  command -v "$tool" >/dev/null 2>&1 || { echo "$tool is missing" >&2; exit 1; }
done

mkdir -p "$out/bin" "$out/obj" "$out/gen"
# One build of this folder at a time (./test.sh and a developer's run).
exec 9>"$out/.lock"
flock 9

# The Debian libraries the fuzzed code links (deploy/debian-packages.txt).
packages=(grpc++ protobuf absl_base absl_flat_hash_map absl_flat_hash_set absl_random_random
  absl_status absl_statusor absl_str_format absl_strings absl_synchronization absl_time openssl
  spdlog fmt sqlite3 libsystemd)
read -r -a pkg_cflags <<<"$(pkg-config --cflags "${packages[@]}")"
read -r -a pkg_libs <<<"$(pkg-config --libs "${packages[@]}")"
sanitizers=("-fsanitize=address,undefined" -fno-sanitize-recover=undefined)
cxxflags=(-std=c++17 -O1 -gline-tables-only -fno-omit-frame-pointer "${sanitizers[@]}"
  -fsanitize=fuzzer-no-link -I. -I"$out/gen" "${pkg_cflags[@]}")
compiler_id=$("$cxx" --version | head -n 1)

# libFuzzer: clang finds it in libclang-rt-dev (libclang_rt.fuzzer).
probe_key=$(printf '%s\n' "$compiler_id" | sha256sum | cut -d' ' -f1)
if [[ ! -x "$out/probe" || "$(cat "$out/probe.key" 2>/dev/null)" != "$probe_key" ]]; then
  printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' \
    >"$out/probe.cc"
  if ! "$cxx" -fsanitize=fuzzer,address,undefined "$out/probe.cc" -o "$out/probe" \
      >"$out/probe.log" 2>&1; then
    echo "$cxx cannot link a libFuzzer target (apt-get install libclang-rt-dev):" >&2
    tail -n 5 "$out/probe.log" >&2
    exit 2
  fi
  echo "$probe_key" >"$out/probe.key"
fi

# --- generated protos --------------------------------------------------------
protos=(admin config peer session witness)
proto_key=$({ protoc --version; for p in "${protos[@]}"; do sha256sum "$root/proto/cloudha/v1/$p.proto"; done; } |
  sha256sum | cut -d' ' -f1)
if [[ "$(cat "$out/gen/.key" 2>/dev/null)" != "$proto_key" ]]; then
  rm -rf "$out/gen"
  mkdir -p "$out/gen"
  files=()
  for p in "${protos[@]}"; do files+=("cloudha/v1/$p.proto"); done
  if ! (cd "$root/proto" && protoc -I. -I/usr/include --cpp_out="$out/gen" "${files[@]}") \
      2>"$out/protoc.log"; then
    cat "$out/protoc.log" >&2
    exit 1
  fi
  echo "$proto_key" >"$out/gen/.key"
fi
# Bazel stamps base/build_info_stamp.h (base/make_build_info.sh); the
# fuzzers get a fixed one.
mkdir -p "$out/gen/base"
printf '%s\n' '#define CLOUDHA_BUILD_VERSION "0.0.0-fuzz"' '#define CLOUDHA_BUILD_COMMIT "fuzz"' \
  '#define CLOUDHA_BUILD_DATE "unknown"' >"$out/gen/base/build_info_stamp.h"
proto_sources=()
for p in "${protos[@]}"; do proto_sources+=("$out/gen/cloudha/v1/$p.pb.cc"); done

# --- what each fuzzer links, besides its own file, fuzz_support and base/log ---
declare -A links=(
  [session_codec_fuzzer]="sync/session_codec.cc sync/session_record.cc PROTOS"
  [config_path_fuzzer]="sync/config_path.cc"
  [config_json_fuzzer]="agent/cli/config_json.cc sync/config_path.cc PROTOS"
  [epoch_store_fuzzer]="agent/epoch_store.cc base/secure_file.cc"
  [agent_config_fuzzer]="agent/agent_config.cc crypto/node_identity.cc crypto/openssl_util.cc
    crypto/tls_material.cc base/secure_file.cc base/host_port.cc base/netns.cc sync/config_path.cc
    PROTOS"
  [hello_fuzzer]="agent/membership.cc agent/local_node.cc agent/node_core.cc agent/role_machine.cc
    agent/election.cc agent/arbiter_rules.cc agent/peer_verifier.cc crypto/node_identity.cc
    crypto/openssl_util.cc base/build_info.cc PROTOS"
  [config_follower_fuzzer]="sync/config_follower.cc sync/config_committer.cc sync/config_store.cc
    sync/config_path.cc base/fake_clock.cc PROTOS"
  [session_replica_fuzzer]="sync/session_replica.cc sync/session_table.cc sync/change_log.cc
    sync/session_codec.cc sync/session_record.cc base/fake_clock.cc PROTOS"
)
fuzzers=(session_codec_fuzzer config_path_fuzzer config_json_fuzzer epoch_store_fuzzer
  agent_config_fuzzer hello_fuzzer config_follower_fuzzer session_replica_fuzzer)
seed_links="agent/agent_config.cc crypto/node_identity.cc crypto/openssl_util.cc
  crypto/tls_material.cc base/secure_file.cc base/host_port.cc base/netns.cc agent/local_node.cc
  base/build_info.cc sync/session_codec.cc
  sync/session_record.cc sync/session_table.cc sync/change_log.cc sync/session_replica.cc
  sync/config_follower.cc sync/config_committer.cc sync/config_store.cc sync/config_path.cc
  base/fake_clock.cc PROTOS"

# The sources of a link list: tree-relative paths, generated ones absolute.
expand() {
  local word
  for word in $1; do
    if [[ $word == PROTOS ]]; then printf '%s\n' "${proto_sources[@]}"; else printf '%s\n' "$word"; fi
  done
}

object_of() {  # SOURCE -> its object file
  local rel=${1#"$out/gen/"}
  printf '%s/obj/%s.o\n' "$out" "${rel%.cc}"
}

# The content key of an object: compiler, flags, and every file of its last
# dependency list (clang -MMD: the source and the headers outside system
# folders). Fails when a listed file is gone.
content_key() {  # DEPFILE
  {
    printf '%s\n' "$compiler_id" "${cxxflags[*]}"
    sed -e 's/^[^:]*://' -e 's/\\$//' "$1" | tr ' ' '\n' | sed '/^$/d' | sort -u |
      (cd "$root" && xargs -r sha256sum)
  } | sha256sum | cut -d' ' -f1
}

compile() {  # SOURCE
  local src=$1 obj
  obj=$(object_of "$src")
  mkdir -p "$(dirname "$obj")"
  (cd "$root" && "$cxx" "${cxxflags[@]}" -MMD -MF "$obj.d" -c "$src" -o "$obj") || return 1
  content_key "$obj.d" >"$obj.key"
}

stale() {  # SOURCE: whether it needs compiling
  local obj key
  obj=$(object_of "$1")
  [[ -f "$obj" && -f "$obj.d" && -f "$obj.key" ]] || return 0
  key=$(content_key "$obj.d" 2>/dev/null) || return 0
  [[ "$key" != "$(cat "$obj.key")" ]]
}

# Every source any target needs, once.
declare -A wanted=()
for f in "${fuzzers[@]}"; do
  wanted["test/fuzz/$f.cc"]=1
  while IFS= read -r s; do wanted["$s"]=1; done < <(expand "${links[$f]}")
done
wanted[test/fuzz/fuzz_support.cc]=1
wanted[base/log.cc]=1
if [[ $seeds -eq 1 ]]; then
  wanted[test/fuzz/make_seeds.cc]=1
  while IFS= read -r s; do wanted["$s"]=1; done < <(expand "$seed_links")
fi

todo=()
for s in "${!wanted[@]}"; do
  if stale "$s"; then todo+=("$s"); fi
done
jobs=${CLOUDHA_FUZZ_JOBS:-$(nproc)}
if [[ ${#todo[@]} -gt 0 ]]; then
  echo "fuzz build: compiling ${#todo[@]} files ($jobs at a time) in $out" >&2
  failed=0
  running=0
  for s in "${todo[@]}"; do
    if [[ $running -ge $jobs ]]; then
      wait -n || failed=1
      running=$((running - 1))
    fi
    compile "$s" &
    running=$((running + 1))
  done
  while [[ $running -gt 0 ]]; do
    wait -n || failed=1
    running=$((running - 1))
  done
  [[ $failed -eq 0 ]] || { echo "fuzz build: compiling failed (see above)" >&2; exit 1; }
fi

link() {  # NAME MAIN_SOURCE LINK_LIST FUZZER(1|0)
  local name=$1 main=$2 list=$3 fuzzer=$4 objects=() key s
  objects+=("$(object_of "$main")" "$(object_of test/fuzz/fuzz_support.cc)" "$(object_of base/log.cc)")
  while IFS= read -r s; do objects+=("$(object_of "$s")"); done < <(expand "$list")
  local flags=("${sanitizers[@]}")
  if [[ $fuzzer -eq 1 ]]; then flags+=(-fsanitize=fuzzer); else flags+=(-fsanitize=fuzzer-no-link); fi
  key=$({ printf '%s\n' "$compiler_id" "${flags[*]}" "${pkg_libs[*]}"; sha256sum "${objects[@]}"; } |
    sha256sum | cut -d' ' -f1)
  if [[ -x "$out/bin/$name" && "$(cat "$out/bin/$name.key" 2>/dev/null)" == "$key" ]]; then
    return 0
  fi
  "$cxx" "${flags[@]}" "${objects[@]}" "${pkg_libs[@]}" -o "$out/bin/$name"
  echo "$key" >"$out/bin/$name.key"
}

for f in "${fuzzers[@]}"; do
  link "$f" "test/fuzz/$f.cc" "${links[$f]}" 1
done
if [[ $seeds -eq 1 ]]; then
  link make_seeds test/fuzz/make_seeds.cc "$seed_links" 0
  mkdir -p "$root/test/fuzz/corpus"
  "$out/bin/make_seeds" "$root/test/fuzz/corpus" "$root/test/fuzz" \
    "$root/deploy/config/agent.textproto"
  echo "fuzz build: seeds written to $root/test/fuzz/corpus" >&2
fi
echo "$out/bin"
