#!/usr/bin/env bash
# Builds the Debian package cloudha_VERSION_amd64.deb from the Bazel-built
# binary:
#
#   deploy/build-deb.sh [--binary PATH] [--out DIR]
#
#   --binary PATH  the cloudha binary to package (default: bazel build
#                  //agent/cli:cloudha, then bazel-bin/agent/cli/cloudha)
#   --out DIR      where the .deb goes (default: the current folder)
#
# The version is the VERSION file at the top of the tree (the one source of
# it); deploy/debian/changelog must start with an entry for it.
#
# Why dpkg-deb on a staged tree and not debhelper: the binary is already
# built (by Bazel, with its own cache), so there is nothing for a debian/rules
# build to do; what debhelper would add here is a handful of steps (strip,
# gzip the man pages, md5sums, shlibs:Depends, the systemd snippets of the
# maintainer scripts), each done below in a line or two or written out in
# deploy/debian/, where a reader sees all of it. The result is reproducible:
# every timestamp is the changelog's (SOURCE_DATE_EPOCH), every owner root
# (--root-owner-group), every mode set explicitly.
set -euo pipefail
umask 022

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
binary=""
out=$PWD
usage() { echo "usage: deploy/build-deb.sh [--binary PATH] [--out DIR]" >&2; exit 1; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --binary) [[ $# -ge 2 ]] || usage; binary=$2; shift 2 ;;
    --out) [[ $# -ge 2 ]] || usage; out=$2; shift 2 ;;
    -h|--help) sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) usage ;;
  esac
done
die() { echo "build-deb.sh: $*" >&2; exit 1; }

# The tools, each from a package of deploy/debian-packages.txt.
missing=()
for tool in dpkg-deb:dpkg dpkg-shlibdeps:dpkg-dev dpkg-parsechangelog:dpkg-dev \
    help2man:help2man strip:binutils gzip:gzip; do
  command -v "${tool%%:*}" >/dev/null 2>&1 && continue
  [[ " ${missing[*]} " == *" ${tool#*:} "* ]] || missing+=("${tool#*:}")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  die "needs the Debian packages ${missing[*]}: apt-get install ${missing[*]}" \
    "(./test.sh installs everything deploy/debian-packages.txt lists)"
fi

version=$(tr -d '[:space:]' <"$repo/VERSION")
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+([~+][0-9A-Za-z.~+]*)?$ ]] ||
  die "VERSION holds '$version', not a version like 1.2.3"
changelog="$repo/deploy/debian/changelog"
changelog_version=$(dpkg-parsechangelog -l "$changelog" -S Version)
[[ "$changelog_version" == "$version" ]] ||
  die "deploy/debian/changelog starts with $changelog_version but VERSION is $version:" \
    "add a changelog entry for $version (dch -v $version, or by hand)"
SOURCE_DATE_EPOCH=$(dpkg-parsechangelog -l "$changelog" -S Timestamp)
export SOURCE_DATE_EPOCH

if [[ -z "$binary" ]]; then
  command -v bazel >/dev/null 2>&1 ||
    die "bazel not found: apt-get install bazel-bootstrap (./test.sh installs it), or pass --binary PATH"
  (cd "$repo" && bazel build //agent/cli:cloudha) || die "bazel build //agent/cli:cloudha failed"
  binary="$(cd "$repo" && bazel info bazel-bin 2>/dev/null)/agent/cli/cloudha"
fi
[[ -x "$binary" ]] || die "no executable cloudha binary at $binary"
mkdir -p "$out"
out=$(cd "$out" && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/cloudha-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
root="$work/root"
doc="$root/usr/share/doc/cloudha"
install -d -m 0755 "$root" "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" \
  "$root/etc/cloudha" "$root/usr/lib/sysusers.d" "$root/usr/share/cloudha/hooks" \
  "$doc/docs" "$root/usr/share/man/man5" "$root/usr/share/man/man8" \
  "$root/usr/share/lintian/overrides"

# The binary, stripped as dh_strip does.
install -m 0755 "$binary" "$root/usr/bin/cloudha"
strip --remove-section=.comment --remove-section=.note --strip-unneeded "$root/usr/bin/cloudha"

install -m 0644 "$repo/deploy/systemd/cloudha.service" "$root/lib/systemd/system/cloudha.service"
install -m 0644 "$repo/deploy/debian/sysusers.conf" "$root/usr/lib/sysusers.d/cloudha.conf"
install -m 0644 "$repo/deploy/debian/lintian-overrides" "$root/usr/share/lintian/overrides/cloudha"
for hook in "$repo"/deploy/hooks/*.sh; do
  # cloud-lib.sh is sourced by the cloud hooks, not run.
  mode=0755
  [[ "$hook" == */cloud-lib.sh ]] && mode=0644
  install -m "$mode" "$hook" "$root/usr/share/cloudha/hooks/"
done

# The configuration the unit reads: the example of deploy/config with every
# setting commented out, so that an unedited file is refused (check-config:
# "cluster ... is required") instead of starting a node with the example's
# names and addresses. A conffile: dpkg never overwrites a changed one.
{
  cat <<'HEADER'
# cloudha agent configuration, read by `cloudha agent` (cloudha.service).
# Reference: man cloudha.conf, /usr/share/doc/cloudha/README.md.
#
# Every setting below is commented out: the agent refuses to start until you
# write this node's own. Uncomment and edit, put the certificates from
# `cloudha certs init` in /etc/cloudha/certs/ (the key readable by the user
# cloudha: chown cloudha: a.key), then:
#   cloudha check-config /etc/cloudha/agent.textproto
#   systemctl restart cloudha
# Upgrades of the package keep your changes to this file.
#
HEADER
  sed -e 's/^\([^#]\)/# \1/' "$repo/deploy/config/agent.textproto"
} >"$work/agent.textproto"
install -m 0644 "$work/agent.textproto" "$root/etc/cloudha/agent.textproto"

# Documentation: the README and docs/ keep their relative links; the unit's
# Documentation= names README.md, so it stays uncompressed.
install -m 0644 "$repo/README.md" "$doc/README.md"
install -d -m 0755 "$doc/hooks"
install -m 0644 "$repo/deploy/hooks/README.md" "$doc/hooks/README.md"
for page in "$repo"/docs/*.md; do install -m 0644 "$page" "$doc/docs/"; done
install -m 0644 "$repo/deploy/debian/copyright" "$doc/copyright"
gzip -9n <"$changelog" >"$doc/changelog.gz"
chmod 0644 "$doc/changelog.gz"

# Man pages from the CLI's own help: cloudha(8) with the list of
# subcommands, one cloudha-COMMAND(8) per subcommand (its --help-all), and cloudha.conf(5)
# from the README's configuration reference.
man="$work/man"
mkdir -p "$man"
help2man --no-info --no-discard-stderr --version-string="$version" --section=8 \
  --manual="System Administration" --source="cloudha $version" \
  --include="$repo/deploy/debian/cloudha.h2m" \
  --output="$man/cloudha.8" "$root/usr/bin/cloudha" ||
  die "help2man failed on cloudha --help"
# The subcommands, as `cloudha --help` lists them ("  NAME  description").
mapfile -t commands < <("$root/usr/bin/cloudha" --help |
  awk '/^Subcommands:/ { inside = 1; next } inside && /^  [a-z]/ { print $1 }')
[[ ${#commands[@]} -gt 0 ]] || die "cloudha --help lists no subcommands"
for command in "${commands[@]}"; do
  # help2man names the page after the program: a wrapper called cloudha-COMMAND.
  printf '#!/bin/sh\nexec "%s" %s "$@"\n' "$root/usr/bin/cloudha" "$command" >"$work/cloudha-$command"
  chmod 0755 "$work/cloudha-$command"
  description=$("$root/usr/bin/cloudha" "$command" --help | head -n 1)
  help2man --no-info --no-discard-stderr --version-string="$version" --section=8 \
    --manual="System Administration" --source="cloudha $version" --help-option=--help-all \
    --name="$description" --output="$man/cloudha-$command.8" "$work/cloudha-$command" ||
    die "help2man failed on cloudha $command --help-all"
  printf '.SH "SEE ALSO"\n.BR cloudha (8),\n.BR cloudha.conf (5)\n' >>"$man/cloudha-$command.8"
done
# CLI11's usage lines lack the program's name ("Usage: agent [OPTIONS]"):
# help2man's SYNOPSIS gets it back.
for page in "$man"/*.8; do
  awk '
    synopsis && /^\.B / { sub(/^\.B /, ".B cloudha "); if ($0 == ".B cloudha cloudha") $0 = ".B cloudha" }
    synopsis && /^\[/ { print ".B cloudha" }
    { synopsis = ($0 == ".SH SYNOPSIS"); print }
  ' "$page" >"$page.new"
  mv "$page.new" "$page"
done
conf_page() {  # README.md: its "Configuration reference" section as cloudha.conf(5)
  awk -v version="$version" -v date="$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)" '
    function roff(text) {
      gsub(/\\/, "\\e", text)
      while (match(text, /`[^`]*`/)) {
        text = substr(text, 1, RSTART - 1) "\\fB" substr(text, RSTART + 1, RLENGTH - 2) "\\fR" \
          substr(text, RSTART + RLENGTH)
      }
      gsub(/\*\*/, "", text)
      while (match(text, /\[[^]]*\]\([^)]*\)/)) {  # [text](link) -> text (link)
        link = substr(text, RSTART + 1, RLENGTH - 2)
        sub(/\]\(/, " (", link)
        text = substr(text, 1, RSTART - 1) link ")" substr(text, RSTART + RLENGTH)
      }
      if (text ~ /^[.'\'']/) text = "\\&" text
      return text
    }
    BEGIN {
      print ".TH CLOUDHA.CONF 5 \"" date "\" \"cloudha " version "\" \"File Formats\""
      print ".SH NAME"
      print "cloudha.conf \\- cloudha agent configuration (/etc/cloudha/agent.textproto)"
      print ".SH DESCRIPTION"
    }
    /^## Configuration reference/ { inside = 1; next }
    inside && /^## / { exit }
    !inside { next }
    /^\| *field *\|/ { print ".SH FIELDS"; next }
    /^\|---/ { next }
    /^\|/ {
      row = $0
      gsub(/\\\|/, "\001", row)  # an escaped \| inside a cell
      split(row, cell, /[ ]*\|[ ]*/)
      for (i = 2; i <= 4; i++) gsub(/\001/, "|", cell[i])
      print ".TP"
      print roff(cell[2])
      print roff(cell[3])
      print ".br"
      print "Default / range: " roff(cell[4])
      next
    }
    /^$/ { if (started) print ".PP"; next }
    { started = 1; print roff($0) }
    END {
      print ".SH FILES"
      print "/etc/cloudha/agent.textproto, the file the packaged systemd unit reads."
      print ".SH SEE ALSO"
      print ".BR cloudha (8),"
      print ".BR cloudha-check-config (8)."
      print "The schema is the AgentConfig message of proto/cloudha/v1/config.proto in the source tree."
    }' "$repo/README.md"
}
conf_page >"$man/cloudha.conf.5"
grep -q '^\.SH FIELDS' "$man/cloudha.conf.5" || die "README.md has no configuration reference table"
for page in "$man"/*.8; do
  gzip -9n <"$page" >"$root/usr/share/man/man8/${page##*/}.gz"
done
gzip -9n <"$man/cloudha.conf.5" >"$root/usr/share/man/man5/cloudha.conf.5.gz"
chmod 0644 "$root"/usr/share/man/man*/*.gz

# Control files. Depends: what dpkg-shlibdeps finds the binary needs (with
# the versions Debian's shlibs files give, libc6 included), as debhelper's
# ${shlibs:Depends}. The libraries deploy/debian-packages.txt marks
# "runtime" (what the README told a manual install to apt-get) must each be
# one the binary links, so the list and the package cannot drift apart.
mkdir -p "$work/shlibs/debian"
printf 'Source: cloudha\n\nPackage: cloudha\nArchitecture: amd64\n' >"$work/shlibs/debian/control"
depends=$(cd "$work/shlibs" && dpkg-shlibdeps -O --warnings=0 "$root/usr/bin/cloudha" 2>"$work/shlibs.err" |
  sed -n 's/^shlibs:Depends=//p') || die "dpkg-shlibdeps failed on $binary: $(cat "$work/shlibs.err")"
[[ -n "$depends" ]] || die "dpkg-shlibdeps found no dependency of $binary"
# The unit's ExecReload runs /bin/kill (procps), which a minimal Debian lacks.
depends="$depends, procps"
# shellcheck source=deploy/debian-packages.sh disable=SC1091
source "$repo/deploy/debian-packages.sh"
# (dpkg -S knows a file by one of its paths; /lib and /usr/lib are one folder.)
linked=$(ldd "$root/usr/bin/cloudha" | awk '$3 ~ /^\// { print $3; if (!sub(/^\/usr\//, "/", $3)) $3 = "/usr" $3; print $3 }' |
  { xargs -r dpkg -S 2>/dev/null || true; } | cut -d: -f1 | sort -u)
for package in "${CLOUDHA_RUNTIME_PACKAGES[@]}"; do
  grep -qxF "$package" <<<"$linked" ||
    die "deploy/debian-packages.txt marks $package runtime, but the binary links no library of it"
done

installed_size=$(du -s -k --apparent-size --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@INSTALLED_SIZE@/$installed_size/" \
  -e "s/@DEPENDS@/$depends/" "$repo/deploy/debian/control" >"$root/DEBIAN/control"
install -m 0644 "$repo/deploy/debian/conffiles" "$root/DEBIAN/conffiles"
for script in postinst prerm postrm; do
  install -m 0755 "$repo/deploy/debian/$script" "$root/DEBIAN/$script"
done
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | LC_ALL=C sort |
  xargs md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"

deb="$out/cloudha_${version}_amd64.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
