#!/usr/bin/env bash
# The layers point one way: agent -> sync -> crypto -> base -> proto
# (docs/architecture.md). Fails, naming the file and line, when a source
# file includes a header of a layer above its own, or anything under test/.
# Bazel's visibility rules refuse the same dependencies in BUILD files; this
# catches the include lines themselves.
set -euo pipefail
root=${TEST_SRCDIR:-$PWD/..}/cloudha
declare -A rank=([base]=1 [crypto]=2 [sync]=3 [agent]=4)
violations=0 checked=0
for layer in base crypto sync agent; do
  while IFS= read -r -d '' file; do
    checked=$((checked + 1))
    while IFS=: read -r line target; do
      top=${target%%/*}
      if [[ $top == test ]]; then
        echo "${file#"$root"/}:$line: includes \"$target\": test helpers are not part of the $layer layer"
        violations=$((violations + 1))
      elif [[ -n "${rank[$top]:-}" && ${rank[$top]} -gt ${rank[$layer]} ]]; then
        echo "${file#"$root"/}:$line: includes \"$target\": $layer must not depend on $top (a layer above it)"
        violations=$((violations + 1))
      fi
    done < <(awk '/^[ \t]*#[ \t]*include[ \t]*"/ {
      target = $0; sub(/^[^"]*"/, "", target); sub(/".*/, "", target); print FNR ":" target }' "$file")
  done < <(find -L "$root/$layer" \( -name '*.h' -o -name '*.cc' \) -print0)
done
[[ $checked -gt 0 ]] || { echo "no source files found under $root"; exit 1; }
echo "$checked files checked, $violations includes point up a layer"
[[ $violations -eq 0 ]]
