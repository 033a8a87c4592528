#!/usr/bin/env bash
# deploy/terraform, checked offline (no terraform binary here): every file
# parses with HashiCorp's HCL parser, variables are typed, described and
# validated, references resolve, versions are pinned, the user data gets
# every template variable (test/terraform/check_modules.js). Then the
# checker itself: a copy of the tree with a dangling reference, a variable
# without validation and a missing template variable must fail, naming each.
# Skipped, with the reason, without Node.js or the npm packages (./test.sh
# installs them with npm ci into ~/.cache/cloudha/npm/terraform-check).
set -euo pipefail

runfiles="${TEST_SRCDIR}/${TEST_WORKSPACE}"
work=$(mktemp -d "${TEST_TMPDIR:-/tmp}/terraform.XXXXXX")
xml=${XML_OUTPUT_FILE:-$work/test.xml}
# shellcheck source=test/steps.sh
source "$runfiles/test/steps.sh"
home=$(getent passwd "$(id -u)" | cut -d: -f6 || true)
modules=${CLOUDHA_TERRAFORM_CHECK_MODULES:-${home:-/root}/.cache/cloudha/npm/terraform-check/node_modules}
checker="$runfiles/test/terraform/check_modules.js"
template="$runfiles/deploy/cloud-init/user-data.yaml.tftpl"

# The tree as a real folder (runfiles are symlinks; the checker walks it).
cp -rL "$runfiles/deploy/terraform" "$work/terraform"

skip=""
command -v node >/dev/null 2>&1 || skip="node is not installed (apt-get install nodejs)"
[[ -n "$skip" || -d "$modules/@cdktf/hcl2json" ]] ||
  skip="the npm packages are missing at $modules (./test.sh runs npm ci; no npm registry?)"

checks=()
out=""
if [[ -z "$skip" ]]; then
  out=$(NODE_PATH="$modules" node "$checker" "$work/terraform" "$template" 2>&1) || true
  mapfile -t checks < <(sed -n 's/^\[\(passed\|failed\)\] \(.*\)$/\2/p' <<<"$out" | sed 's/ :: .*$//')
fi
steps_init terraform_modules TerraformModules "$xml" "${checks[@]}" checker_finds_broken_modules
trap 'steps_write_xml; rm -rf "$work"; steps_failed && exit 1; exit 0' EXIT
if [[ -n "$skip" ]]; then
  step_record checker_finds_broken_modules skipped "$skip"
  exit 0
fi
step_record_checker_lines "$out"
[[ ${#checks[@]} -gt 0 ]] || { step_record checker_finds_broken_modules failed "the checker printed no checks: $out"; exit 1; }

# The checker must catch what it claims to.
broken="$work/broken"
cp -r "$work/terraform" "$broken"
module="$broken/modules/aws-pair"
printf '\nresource "aws_eip" "extra" {\n  tags = { a = var.no_such_variable, b = aws_eip.no_such_eip.id, c = module.certificates.no_such_output }\n}\n' \
  >>"$module/main.tf"
printf '\nvariable "unchecked" {\n  type        = string\n  description = "no validation"\n}\n' \
  >>"$module/variables.tf"
sed -i 's/^\(\s*\)extra_config\s*=.*$/\1# extra_config removed/' "$module/main.tf"
bad=$(NODE_PATH="$modules" node "$checker" "$broken" "$template" 2>&1) && rc=0 || rc=$?
missing=()
for want in "var.no_such_variable is not declared" "aws_eip.no_such_eip is not declared" \
    "module.certificates.no_such_output: the module has no such output" \
    "unchecked has no validation" "the template's extra_config is not given"; do
  grep -qF "$want" <<<"$bad" || missing+=("$want")
done
if [[ $rc -ne 0 && ${#missing[@]} -eq 0 ]]; then
  step_record checker_finds_broken_modules passed
else
  step_record checker_finds_broken_modules failed "exit $rc; not reported: ${missing[*]:-}; output: $(head -c 800 <<<"$bad")"
fi
