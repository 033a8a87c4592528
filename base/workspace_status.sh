#!/usr/bin/env bash
# Bazel's --workspace_status_command (.bazelrc): the git commit the build
# comes from, for `cloudha --version`. A tree without git (an unpacked
# release, a copy) says "unknown"; a tree with uncommitted changes adds
# "-dirty".
set -uo pipefail
commit=unknown
if command -v git >/dev/null 2>&1 && git rev-parse --git-dir >/dev/null 2>&1; then
  commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
  if [[ $commit != unknown ]] && ! git diff --quiet HEAD -- 2>/dev/null; then
    commit="$commit-dirty"
  fi
fi
echo "STABLE_CLOUDHA_COMMIT $commit"
