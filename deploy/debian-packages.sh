# shellcheck shell=bash
# The Debian 12 packages cloudha needs to build, test and run, and a function
# that installs the missing ones. Sourced by run.sh and test.sh; quiet when
# nothing is missing.

CLOUDHA_PACKAGES=(
  # toolchain and build
  g++ pkg-config bazel-bootstrap bazel-platforms
  protobuf-compiler protobuf-compiler-grpc grpc-proto
  # libraries
  libgrpc++-dev libprotobuf-dev libabsl-dev libssl-dev
  libspdlog-dev libfmt-dev libcli11-dev libnetfilter-conntrack-dev libsqlite3-dev
  # tests
  libgtest-dev libgmock-dev iproute2 conntrack
)

cloudha_missing_packages() {
  local pkg status
  for pkg in "${CLOUDHA_PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || printf '%s\n' "$pkg"
  done
}

cloudha_install_packages() {
  local missing
  mapfile -t missing < <(cloudha_missing_packages)
  [[ ${#missing[@]} -eq 0 ]] && return 0
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo=(sudo)
    else
      echo "cloudha needs these Debian packages: ${missing[*]}" >&2
      echo "install them as root: apt-get install ${missing[*]}" >&2
      return 1
    fi
  fi
  echo "installing ${#missing[@]} Debian packages: ${missing[*]}"
  local log
  log=$(mktemp)
  if ! { "${sudo[@]}" apt-get update -qq &&
      "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "installing packages failed (see above)" >&2
    return 1
  fi
  rm -f "$log"
}
