#!/usr/bin/env bash
set -euo pipefail
echo "coverage is unavailable in cloudha's offline build (Bazel's coverage tools are not packaged by Debian)" >&2
exit 1
