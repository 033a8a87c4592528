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

# Packages of which only commands are used, never installed ("unpack:COMMAND";
# installing prometheus would start a Prometheus server): package -> commands.
# cloudha_unpack_tools extracts them into the user's cache.
declare -gA CLOUDHA_PACKAGE_UNPACK=()
while read -r pkg tool; do
  CLOUDHA_PACKAGE_UNPACK[$pkg]+="${CLOUDHA_PACKAGE_UNPACK[$pkg]:+ }$tool"
done < <(awk '{ sub(/#.*/, ""); for (i = 2; i <= NF; i++) if ($i ~ /^unpack:/) print $1, substr($i, 8) }' \
  "$CLOUDHA_PACKAGE_LIST")

cloudha_missing_packages() {
  local pkg status tool
  if [[ ${#CLOUDHA_PACKAGES[@]} -eq 0 ]]; then
    echo "deploy/debian-packages.txt names no package (is it missing?)" >&2
    return 1
  fi
  for pkg in "${CLOUDHA_PACKAGES[@]}"; do
    [[ -n "${CLOUDHA_PACKAGE_UNPACK[$pkg]:-}" ]] && continue
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

# cloudha_unpack_tools: the packages marked "unpack:COMMAND", each fetched
# with apt-get download (from the mirror apt is configured with; no root
# needed) and extracted with dpkg-deb -x into
# ${CLOUDHA_TOOLS_DIR:-~/.cache/cloudha/tools}/PACKAGE_VERSION_ARCH/, the
# version apt's candidate. Nothing is installed and none of the package's
# scripts runs. Sets CLOUDHA_TOOL_PATHS[COMMAND] to each command's path.
# Quiet when the candidate is already there; an older one is removed.
# Returns 1, saying why, when a package cannot be had (the tests that need
# its commands are then skipped).
cloudha_unpack_tools() {
  declare -gA CLOUDHA_TOOL_PATHS=()
  local dir=${CLOUDHA_TOOLS_DIR:-${HOME:-/root}/.cache/cloudha/tools}
  local arch pkg rc=0
  arch=$(dpkg --print-architecture) || return 1
  for pkg in "${!CLOUDHA_PACKAGE_UNPACK[@]}"; do
    cloudha_unpack_package "$dir" "$arch" "$pkg" || rc=1
  done
  return "$rc"
}

# cloudha_unpack_package DIR ARCH PACKAGE: one package of cloudha_unpack_tools.
# Without the candidate (no mirror), a version unpacked before is used.
cloudha_unpack_package() {
  local dir=$1 arch=$2 pkg=$3
  local version target="" tool problem="" old
  local -a tools
  read -r -a tools <<<"${CLOUDHA_PACKAGE_UNPACK[$pkg]}"
  version=$(cloudha_candidate "$pkg")
  if [[ -z "$version" ]]; then
    # No candidate: apt's package lists are missing or stale.
    cloudha_apt_update >/dev/null 2>&1 || true
    version=$(cloudha_candidate "$pkg")
  fi
  if [[ -z "$version" ]]; then
    problem="apt knows no Debian package $pkg (is Debian 12's main in apt's sources?)"
  else
    target="$dir/${pkg}_${version//:/%3a}_$arch"
    if [[ ! -f "$target/.unpacked" ]]; then
      echo "unpacking the Debian package $pkg $version for ${tools[*]} into $target"
      problem=$(cloudha_download_unpack "$pkg" "$version" "$dir" "$target" 2>&1) || target=""
    fi
  fi
  if [[ -z "$target" ]]; then
    for old in "$dir/${pkg}_"*"_$arch"; do
      [[ -f "$old/.unpacked" ]] && target=$old
    done
    if [[ -z "$target" ]]; then
      printf '%s\n' "$problem" >&2
      echo "${tools[*]} not available: the tests that need it are skipped" >&2
      return 1
    fi
    echo "note: using ${target##*/}, unpacked before (${problem##*$'\n'})" >&2
  fi
  for old in "$dir/${pkg}_"*; do
    [[ "$old" == "$target" ]] || rm -rf "$old"
  done
  # shellcheck disable=SC2034  # read by the scripts that source this file
  for tool in "${tools[@]}"; do
    if [[ -x "$target/usr/bin/$tool" ]]; then
      CLOUDHA_TOOL_PATHS[$tool]="$target/usr/bin/$tool"
    elif [[ -x "$target/usr/sbin/$tool" ]]; then
      CLOUDHA_TOOL_PATHS[$tool]="$target/usr/sbin/$tool"
    else
      echo "the Debian package $pkg has no usr/bin/$tool or usr/sbin/$tool (deploy/debian-packages.txt)" >&2
      return 1
    fi
  done
}

# cloudha_candidate PACKAGE: the version apt would install, or nothing.
cloudha_candidate() {
  LC_ALL=C apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: //p' | grep -v '^(none)$' || true
}

# cloudha_download_unpack PACKAGE VERSION DIR TARGET: apt-get download and
# dpkg-deb -x into TARGET, whole or not at all; prints apt's log on failure.
cloudha_download_unpack() {
  local pkg=$1 version=$2 dir=$3 target=$4 work
  mkdir -p "$dir" && work=$(mktemp -d "$dir/.$pkg.XXXXXX") || return 1
  # apt-get download writes into the current folder; as root, apt's _apt
  # user downloads only into a folder it may write (else apt warns).
  [[ $(id -u) -ne 0 ]] || chown _apt "$work" 2>/dev/null || true
  # A failure may be lists that name a version the mirror no longer has.
  if ! { (cd "$work" && apt-get download -q "$pkg=$version") >"$work/log" 2>&1 ||
      { cloudha_apt_update >>"$work/log" 2>&1 &&
        (cd "$work" && apt-get download -q "$pkg=$version") >>"$work/log" 2>&1; }; }; then
    cat "$work/log"
    rm -rf "$work"
    echo "apt-get download $pkg=$version failed"
    return 1
  fi
  if ! dpkg-deb -x "$work/${pkg}_"*.deb "$work/root" >>"$work/log" 2>&1; then
    cat "$work/log"
    rm -rf "$work"
    echo "dpkg-deb -x of $pkg $version failed"
    return 1
  fi
  touch "$work/root/.unpacked"
  rm -rf "$target"
  mv "$work/root" "$target"
  rm -rf "$work"
}

# cloudha_apt_update: apt-get update, through sudo when not root.
cloudha_apt_update() {
  if [[ $(id -u) -eq 0 ]]; then
    apt-get update -qq
  elif command -v sudo >/dev/null 2>&1; then
    sudo apt-get update -qq
  else
    echo "apt-get update needs root" >&2
    return 1
  fi
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
