# shellcheck shell=bash
# The Debian 12 packages cloudha needs to build, test and run, and a function
# that installs the missing ones. Sourced by run.sh and test.sh; quiet when
# nothing is missing.

# The list itself is deploy/debian-packages.txt, which the Bazel build reads
# too (third_party/system_libs.bzl): the first word of each line is a package.
CLOUDHA_PACKAGE_LIST="$(dirname "${BASH_SOURCE[0]}")/debian-packages.txt"
mapfile -t CLOUDHA_PACKAGES < <(awk '{ sub(/#.*/, "") } NF { print $1 }' "$CLOUDHA_PACKAGE_LIST")
# The libraries the binary links (the lines marked "runtime"); read by the
# scripts that source this file.
# shellcheck disable=SC2034
mapfile -t CLOUDHA_RUNTIME_PACKAGES < <(
  awk '{ sub(/#.*/, "") } NF && / runtime( |$)/ { print $1 }' "$CLOUDHA_PACKAGE_LIST")

# Packages that only provide a command ("tool:COMMAND"): not installed when
# the command is already there from elsewhere (a Node.js from NodeSource
# brings its own npm, which Debian's npm package would conflict with).
declare -gA CLOUDHA_PACKAGE_TOOLS=()
while read -r pkg tool; do
  CLOUDHA_PACKAGE_TOOLS[$pkg]=$tool
done < <(awk '{ sub(/#.*/, ""); for (i = 2; i <= NF; i++) if ($i ~ /^tool:/) print $1, substr($i, 6) }' \
  "$CLOUDHA_PACKAGE_LIST")

cloudha_missing_packages() {
  local pkg status tool
  if [[ ${#CLOUDHA_PACKAGES[@]} -eq 0 ]]; then
    echo "deploy/debian-packages.txt names no package (is it missing?)" >&2
    return 1
  fi
  for pkg in "${CLOUDHA_PACKAGES[@]}"; do
    tool=${CLOUDHA_PACKAGE_TOOLS[$pkg]:-}
    if [[ -n "$tool" ]] && command -v "$tool" >/dev/null 2>&1; then continue; fi
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || printf '%s\n' "$pkg"
  done
}

cloudha_install_packages() {
  local missing list
  list=$(cloudha_missing_packages) || return 1
  mapfile -t missing < <(printf '%s' "$list" | sed '/^$/d')
  [[ ${#missing[@]} -eq 0 ]] && return 0
  cloudha_apt_install "${missing[@]}"
}

# cloudha_install_tools COMMAND:PACKAGE...: installs the packages of the
# commands that are missing (for scripts beyond the build's list: the image
# build, the VM test). Quiet when nothing is missing.
cloudha_install_tools() {
  local spec missing=()
  for spec in "$@"; do
    command -v "${spec%%:*}" >/dev/null 2>&1 && continue
    [[ " ${missing[*]} " == *" ${spec#*:} "* ]] || missing+=("${spec#*:}")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  cloudha_apt_install "${missing[@]}"
}

# cloudha_apt_install PACKAGE...: apt-get install, through sudo when not
# root; prints apt's log only when it fails.
cloudha_apt_install() {
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo=(sudo)
    else
      echo "cloudha needs these Debian packages: $*" >&2
      echo "install them as root: apt-get install $*" >&2
      return 1
    fi
  fi
  echo "installing $# Debian packages: $*"
  local log
  log=$(mktemp)
  if ! { "${sudo[@]}" apt-get update -qq &&
      "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "$@"; } >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "installing packages failed (see above)" >&2
    return 1
  fi
  rm -f "$log"
}
