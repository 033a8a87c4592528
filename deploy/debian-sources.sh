# shellcheck shell=bash
# Sourced by scripts that build Debian roots (test/fresh_debian.sh,
# deploy/image/build-image.sh): Debian's own package sources as this
# machine's apt has them. Others, such as a vendor's repository, are left
# out: a fresh machine or a VM image lacks them.

# Prints "deb URI SUITE COMPONENT" lines, one per source, sorted; runs
# apt-get update once when apt knows none yet (a machine that never ran it).
debian_sources() {
  local lines
  lines=$(_debian_source_lines)
  if [[ -z "$lines" ]]; then
    apt-get update -qq >/dev/null 2>&1 || true
    lines=$(_debian_source_lines)
  fi
  printf '%s\n' "$lines"
}

_debian_source_lines() {
  # shellcheck disable=SC2016  # apt-get expands $(FIELD) itself
  apt-get indextargets --format '$(TARGET_OF) $(ORIGIN) $(REPO_URI) $(RELEASE) $(COMPONENT)' |
    awk '$1 == "deb" && $2 == "Debian" { print "deb " $3 " " $4 " " $5 }' | sort -u
}

# debian_mirror SOURCES SUITE: the URI of SUITE's first source, or nothing.
debian_mirror() {
  awk -v s="$2" '$3 == s { print $2; exit }' <<<"$1"
}

# apt settings of this machine a root built from its mirror needs too
# (a mirror snapshot's validity, a proxy), as an apt.conf fragment.
debian_apt_settings() {
  apt-config dump | grep -E '^Acquire::(Check-Valid-Until|Check-Date|(http|https|ftp)::Proxy) ' || true
}
