#!/usr/bin/env bash
# The Debian package: deploy/build-deb.sh builds it from this build's binary;
# lintian finds no error and no warning that deploy/debian/lintian-overrides
# does not accept (every tag is printed); it installs what the README's
# "Install the Debian package" section says and nothing else; its conffile
# is the configuration the unit reads, refused as long as it is unedited;
# its maintainer scripts parse; and its systemd unit passes
# `systemd-analyze verify` and scores at most 3.0 in
# `systemd-analyze security --offline=true`, without the settings that would
# cut hooks off from cloud APIs, the metadata service or netlink.
# Touches no network. Writes one JUnit testcase per step to $XML_OUTPUT_FILE.
set -euo pipefail

runfiles=${TEST_SRCDIR:-$PWD/..}/cloudha
cloudha="$runfiles/agent/cli/cloudha"
work=$(mktemp -d "${TEST_TMPDIR:-/tmp}/deb.XXXXXX")
xml=${XML_OUTPUT_FILE:-$work/test.xml}
max_exposure=3.0

steps=(build lintian contents conffile maintainer_scripts unit_verify unit_security unit_network)
# shellcheck source=test/steps.sh
source "$runfiles/test/steps.sh"
steps_init deb_package DebPackage "$xml" "${steps[@]}"
record() { step_record "$@"; }
finish() {
  local rc=$? step
  trap - EXIT
  steps_write_xml
  rm -rf "$work"
  steps_failed && exit 1
  exit "$rc"
}
trap finish EXIT
fail() {  # STEP MESSAGE [LOG]
  record "$1" failed "$2"
  if [[ -n "${3:-}" && -f "$3" ]]; then tail -n 40 "$3"; fi
  exit 1
}
# A step whose tool is missing is skipped, with the reason.
have() { command -v "$1" >/dev/null 2>&1; }

# 1. Build, as a user would, but from this build's binary.
"$runfiles/deploy/build-deb.sh" --binary "$cloudha" --out "$work" >"$work/build.log" 2>&1 ||
  fail build "deploy/build-deb.sh failed" "$work/build.log"
version=$(tr -d '[:space:]' <"$runfiles/VERSION")
deb="$work/cloudha_${version}_amd64.deb"
[[ -f "$deb" ]] || fail build "deploy/build-deb.sh wrote no $(basename "$deb")" "$work/build.log"
[[ $(dpkg-deb -f "$deb" Version) == "$version" ]] || fail build "the package's version is not VERSION's $version"
[[ $(dpkg-deb -f "$deb" Depends) == *"libc6"* ]] || fail build "Depends names no libc6 (dpkg-shlibdeps did not run?)"
[[ $(dpkg-deb -f "$deb" Depends) == *"procps"* ]] || fail build "Depends names no procps (the unit's ExecReload runs /bin/kill)"
record build passed "$(basename "$deb"), $(stat -c %s "$deb") bytes"
root="$work/root"
dpkg-deb -x "$deb" "$root"
dpkg-deb -e "$deb" "$work/control"

# 2. lintian: no error; every warning overridden, with its reason, in
# deploy/debian/lintian-overrides (shipped in the package).
if have lintian; then
  # HOME: lintian wants one; the test's is not always writable.
  rc=0
  HOME="$work" lintian --fail-on error,warning --display-info --pedantic --show-overrides "$deb" \
    >"$work/lintian.log" 2>&1 || rc=$?
  echo "--- lintian (E error, W warning, I info, P pedantic, O overridden and accepted)"
  grep -E '^[EWIPO]: ' "$work/lintian.log" || echo "(no tags)"
  if [[ $rc -ne 0 ]]; then
    tags=$(grep -E '^[EW]: ' "$work/lintian.log" | tr '\n' ' ' || true)
    [[ -n "$tags" ]] || fail lintian "lintian failed (exit $rc)" "$work/lintian.log"
    fail lintian "errors, or warnings that deploy/debian/lintian-overrides does not accept: $tags"
  fi
  record lintian passed ""
else
  record lintian skipped "lintian is not installed (apt-get install lintian; ./test.sh installs it)"
fi

# 3. The file list against the README: every path of the table in "Install
# the Debian package" is in the package, and every file of the package is
# at or below one of them.
section=$(sed -n '/^## Install the Debian package/,/^## /p' "$runfiles/README.md")
[[ -n "$section" ]] || fail contents "README.md has no section \"Install the Debian package\""
# shellcheck disable=SC2016  # backquotes of markdown, not of the shell
mapfile -t promised < <(grep -E '^\| `/' <<<"$section" | sed -E 's/^\| `([^`]*)`.*/\1/')
[[ ${#promised[@]} -gt 0 ]] || fail contents "the README's package section has no table of installed paths"
dpkg-deb -c "$deb" | awk '{ print $6 }' | sed -e 's|^\./|/|' -e 's|/$||' | sed '/^$/d' >"$work/files"
# A path may be a pattern (cloudha-*.8.gz): it must match some file.
for path in "${promised[@]}"; do
  found=0
  while read -r file; do
    # shellcheck disable=SC2053  # $path is a pattern
    [[ "$file" == $path ]] && found=1 && break
  done <"$work/files"
  [[ $found -eq 1 ]] || fail contents "the README says the package installs $path; it does not"
done
while read -r file; do
  [[ -d "$root$file" ]] && continue
  covered=0
  for path in "${promised[@]}"; do
    # shellcheck disable=SC2053
    [[ "$file" == $path || "$file" == "$path"/* ]] && covered=1 && break
  done
  [[ $covered -eq 1 ]] || fail contents "the package installs $file, which the README's table does not name"
done <"$work/files"
for man_page in /usr/share/man/man8/cloudha.8.gz /usr/share/man/man5/cloudha.conf.5.gz; do
  gzip -t "$root$man_page" || fail contents "$man_page is not a valid gzip file"
done
[[ -x "$root/usr/bin/cloudha" ]] || fail contents "/usr/bin/cloudha is not executable"
record contents passed "${#promised[@]} paths as the README says"

# 4. The conffile: the file the unit reads, every setting commented out (so
# an unedited one is refused), and uncommented it is deploy/config's
# example (which //test:readme_quickstart_test checks).
[[ "$(cat "$work/control/conffiles")" == "/etc/cloudha/agent.textproto" ]] ||
  fail conffile "DEBIAN/conffiles is not exactly /etc/cloudha/agent.textproto: $(cat "$work/control/conffiles")"
conf="$root/etc/cloudha/agent.textproto"
grep -q 'ExecStart=/usr/bin/cloudha agent --config /etc/cloudha/agent.textproto' \
  "$root/lib/systemd/system/cloudha.service" || fail conffile "the unit's ExecStart does not read /etc/cloudha/agent.textproto"
grep -q 'ExecStartPre=/usr/bin/cloudha check-config /etc/cloudha/agent.textproto' \
  "$root/lib/systemd/system/cloudha.service" || fail conffile "the unit's ExecStartPre does not check /etc/cloudha/agent.textproto"
rc=0
"$cloudha" check-config "$conf" >"$work/check.log" 2>&1 || rc=$?
[[ $rc -eq 2 ]] || fail conffile "check-config of the unedited conffile exited $rc, want 2 (refused)" "$work/check.log"
grep -q 'cluster .* is required' "$work/check.log" ||
  fail conffile "check-config of the unedited conffile does not say what is missing" "$work/check.log"
example="$runfiles/deploy/config/agent.textproto"
sed 's/^\([^#]\)/# \1/' "$example" >"$work/expected"
tail -n "$(wc -l <"$example")" "$conf" | diff -u "$work/expected" - >"$work/conf.diff" ||
  fail conffile "the conffile does not end with deploy/config/agent.textproto commented out" "$work/conf.diff"
record conffile passed "refused while unedited: $(head -n 1 "$work/check.log")"

# 5. Maintainer scripts: POSIX sh that parses (and passes shellcheck when
# it is installed); the systemd parts as dh_installsystemd writes them.
for script in postinst prerm postrm; do
  [[ -x "$work/control/$script" ]] || fail maintainer_scripts "DEBIAN/$script is missing or not executable"
  sh -n "$work/control/$script" 2>"$work/sh.err" ||
    fail maintainer_scripts "DEBIAN/$script does not parse: $(cat "$work/sh.err")"
  if have shellcheck; then
    shellcheck -s sh "$work/control/$script" >"$work/shellcheck.log" 2>&1 ||
      fail maintainer_scripts "shellcheck finds problems in DEBIAN/$script" "$work/shellcheck.log"
  fi
done
grep -q "deb-systemd-helper enable 'cloudha.service'" "$work/control/postinst" ||
  fail maintainer_scripts "postinst does not enable cloudha.service"
grep -q "systemd-sysusers /usr/lib/sysusers.d/cloudha.conf" "$work/control/postinst" ||
  fail maintainer_scripts "postinst does not create the user from the sysusers.d file"
grep -q "deb-systemd-invoke stop 'cloudha.service'" "$work/control/prerm" ||
  fail maintainer_scripts "prerm does not stop cloudha.service"
grep -q "deb-systemd-helper purge 'cloudha.service'" "$work/control/postrm" ||
  fail maintainer_scripts "postrm does not purge cloudha.service's state"
grep -Eq '^u cloudha - .* /var/lib/cloudha ' "$root/usr/lib/sysusers.d/cloudha.conf" ||
  fail maintainer_scripts "sysusers.d/cloudha.conf does not make the user cloudha with home /var/lib/cloudha"
record maintainer_scripts passed ""

# 6. systemd-analyze verify: the installed unit, with /usr/bin/cloudha
# pointing into the unpacked package (verify checks that every command is
# executable) and man pages looked up in the package (verify runs `man` on
# each Documentation=man: page).
unit="$root/lib/systemd/system/cloudha.service"
if have systemd-analyze; then
  mkdir -p "$work/verify"
  sed "s#/usr/bin/cloudha#$root/usr/bin/cloudha#g" "$unit" >"$work/verify/cloudha.service"
  if ! have man; then
    verify_man=(--man=no)
    echo "man is not installed: verify does not check the Documentation= man pages"
  else
    verify_man=(--man=yes)
  fi
  MANPATH="$root/usr/share/man" systemd-analyze verify "${verify_man[@]}" \
    "$work/verify/cloudha.service" >"$work/verify.log" 2>&1 ||
    fail unit_verify "systemd-analyze verify: $(tr '\n' ' ' <"$work/verify.log")"
  # verify exits 0 on some warnings; none is expected.
  [[ ! -s "$work/verify.log" ]] || fail unit_verify "systemd-analyze verify warns: $(tr '\n' ' ' <"$work/verify.log")"
  record unit_verify passed ""
else
  record unit_verify skipped "systemd-analyze is not installed (it is in the package systemd)"
fi

# 7. systemd-analyze security, offline (systemd >= 250), on the unit as packaged.
if have systemd-analyze; then
  systemd-analyze security --offline=true --no-pager "$unit" >"$work/security.log" 2>&1 ||
    fail unit_security "systemd-analyze security --offline=true failed" "$work/security.log"
  echo "--- systemd-analyze security --offline=true cloudha.service: what is not hardened"
  grep -F '✗' "$work/security.log" || true
  overall=$(grep -o 'Overall exposure level for cloudha.service: [0-9.]* [A-Z]*' "$work/security.log" || true)
  echo "$overall"
  score=$(awk '{ print $(NF - 1) }' <<<"$overall")
  [[ "$score" =~ ^[0-9]+\.[0-9]+$ ]] || fail unit_security "no overall exposure level in the output" "$work/security.log"
  awk -v s="$score" -v max="$max_exposure" 'BEGIN { exit !(s <= max) }' ||
    fail unit_security "exposure $score is above $max_exposure"
  record unit_security passed "exposure $score (at most $max_exposure)"
else
  record unit_security skipped "systemd-analyze is not installed (it is in the package systemd)"
fi

# 8. What the hooks and the agent need stays open: cloud APIs and the
# metadata service (no IP filter, the host's network), netlink (conntrack,
# `ip`), CAP_NET_ADMIN in the ambient and bounding sets, a home that the
# sandbox neither hides nor makes read-only (cloud CLI credentials).
setting() { sed -n "s/^$1=//p" "$unit" | tail -n 1; }
for forbidden in IPAddressDeny IPAddressAllow PrivateNetwork PrivateUsers DynamicUser; do
  grep -q "^$forbidden=" "$unit" && fail unit_network "the unit sets $forbidden=, which cuts hooks off from the network or from CAP_NET_ADMIN"
done
for family in AF_INET AF_INET6 AF_NETLINK AF_UNIX; do
  [[ " $(setting RestrictAddressFamilies) " == *" $family "* ]] ||
    fail unit_network "RestrictAddressFamilies= lacks $family"
done
for capability in CAP_NET_ADMIN CAP_NET_RAW; do
  [[ " $(setting AmbientCapabilities) " == *" $capability "* ]] || fail unit_network "AmbientCapabilities= lacks $capability"
  [[ " $(setting CapabilityBoundingSet) " == *" $capability "* ]] || fail unit_network "CapabilityBoundingSet= lacks $capability"
done
[[ $(setting User) == cloudha && $(setting StateDirectory) == cloudha ]] ||
  fail unit_network "the unit does not run as cloudha with StateDirectory=cloudha (the user's home)"
[[ $(setting ProtectHome) =~ ^(yes|read-only|tmpfs|no)$ ]] ||
  fail unit_network "ProtectHome=$(setting ProtectHome) is not a value this test knows"
record unit_network passed ""
