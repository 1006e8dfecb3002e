#!/usr/bin/env bash
# The run step of action.yml (kept in a file so that tests run it as it is).
# Inputs come as RECONCILER_* environment variables; GITHUB_STEP_SUMMARY and GITHUB_OUTPUT are the
# files GitHub provides. Exits with reconciler's exit code (see action.yml).
#
# Nothing is written inside the checkout: the saved plan, the report and the error lines go under
# the runner's temporary folder ($RUNNER_TEMP/reconciler), a place a pull request cannot commit a
# file or a symlink into. A relative plan-file is taken under that folder; a plan-file inside the
# checkout ($GITHUB_WORKSPACE) is refused.
set -uo pipefail

command="${RECONCILER_COMMAND:-plan}"
read -r -a paths <<< "${RECONCILER_PATHS:-}"
read -r -a extra <<< "${RECONCILER_ARGS:-}"
config="${RECONCILER_CONFIG:-reconciler.yaml}"
plan_file="${RECONCILER_PLAN_FILE:-}"
out_dir="${RUNNER_TEMP:?RUNNER_TEMP is not set: the action writes its files there, never in the checkout}/reconciler"
mkdir -p "$out_dir"
report="$out_dir/report.md"
errors="$out_dir/errors.txt"
: > "$report"
: > "$errors"

inside_checkout() {  # is $1 (resolved, symlinks followed) inside the checkout?
  local workspace="${GITHUB_WORKSPACE:-$PWD}" target
  target="$(realpath -m -- "$1")"
  workspace="$(realpath -m -- "$workspace")"
  [[ "$target" == "$workspace" || "$target" == "$workspace"/* ]]
}

if [[ "$command" == plan || "$command" == apply ]]; then
  if [[ -n "$plan_file" && "$plan_file" != /* ]]; then
    plan_file="$out_dir/$plan_file"
  fi
  if [[ "$command" == plan && -n "$plan_file" ]] && inside_checkout "$plan_file"; then
    echo "reconciler action: plan-file $plan_file is inside the checkout; the plan is written under \$RUNNER_TEMP" >&2
    exit 1
  fi
fi

# The trusted settings (connections, endpoints, tables, keys: docs/security.md) come from outside
# the change under review: a file the workflow names, or the config of the branch a pull request
# targets (trusted-config-ref, by default github.base_ref), read through the API with this step's
# token, never from the checkout.
trusted="${RECONCILER_TRUSTED_CONFIG:-}"
trusted_ref="${RECONCILER_TRUSTED_REF:-}"
if [[ -z "$trusted" && -n "$trusted_ref" ]]; then
  trusted="$out_dir/trusted-reconciler.yaml"
  if ! gh api -X GET -H "Accept: application/vnd.github.raw+json" "repos/${GITHUB_REPOSITORY:?}/contents/$config" \
       -f ref="$trusted_ref" > "$trusted"; then
    echo "reconciler action: cannot read $config at $trusted_ref (the trusted settings)" >&2
    exit 1
  fi
fi
if [[ -n "$trusted" ]]; then
  export RECONCILER_CONNECTIONS_FROM="$trusted"
fi

common=(--config "$config" "${extra[@]}")
# the venv the install step made (action.yml); without it, the reconciler already on PATH
if [[ -x "$RUNNER_TEMP/reconciler-venv/bin/reconciler" ]]; then
  PATH="$RUNNER_TEMP/reconciler-venv/bin:$PATH"
fi

fenced() {  # the file $1 as a fenced block that no run of ~ inside it can close
  local fence='~~~'
  while grep -qF -- "$fence" "$1"; do fence="$fence~"; done
  printf '%s\n' "$fence"
  cat -- "$1"
  printf '\n%s\n' "$fence"
}

case "$command" in
  validate)
    reconciler validate "${paths[@]}" "${common[@]}" > "$errors" 2>&1
    code=$?
    cat "$errors"
    { echo "### reconciler validate (exit $code)"; echo; fenced "$errors"; } > "$report"
    ;;
  plan)
    out=()
    [[ -n "$plan_file" ]] && out=(--out "$plan_file")
    reconciler plan "${paths[@]}" "${common[@]}" "${out[@]}" --format markdown --detailed-exitcode > "$report" 2> "$errors"
    code=$?
    ;;
  drift)
    reconciler plan "${paths[@]}" "${common[@]}" --drift --format markdown > "$report" 2> "$errors"
    code=$?
    ;;
  apply)
    if [[ -n "$plan_file" ]]; then
      reconciler apply "$plan_file" "${common[@]}" --format markdown 2> "$errors" | tee "$report"
    else
      reconciler apply "${paths[@]}" "${common[@]}" --auto-approve --format markdown 2> "$errors" | tee "$report"
    fi
    code=${PIPESTATUS[0]}
    ;;
  *)
    echo "reconciler action: command must be validate, plan, apply or drift (got '$command')" >&2
    exit 1
    ;;
esac
if [[ "$command" != validate ]]; then
  cat "$errors" >&2
  if [[ $code -ne 0 && $code -ne 2 && -s "$errors" ]]; then
    # error lines are file:line:col lines, each one escaped line; fenced so nothing in them renders
    { cat "$report"; echo; echo "### reconciler $command failed (exit $code)"; echo; fenced "$errors"; } > "$report.new"
    mv -f -- "$report.new" "$report"
  fi
fi

if [[ -n "${GITHUB_STEP_SUMMARY:-}" && -s "$report" ]]; then
  cat "$report" >> "$GITHUB_STEP_SUMMARY"
fi
if [[ "${RECONCILER_COMMENT:-false}" == "true" && -n "${RECONCILER_PR:-}" && -s "$report" ]]; then
  gh pr comment "$RECONCILER_PR" --body-file "$report" || echo "reconciler action: could not comment on the pull request" >&2
fi
has_changes=false
[[ "$command" != apply && $code -eq 2 ]] && has_changes=true
if [[ -n "${GITHUB_OUTPUT:-}" ]]; then
  {
    echo "exit-code=$code"
    echo "has-changes=$has_changes"
    echo "report=$report"
    echo "plan-file=${plan_file}"
  } >> "$GITHUB_OUTPUT"
fi
# a plan with changes is a successful plan unless asked otherwise
if [[ "$command" == plan && $code -eq 2 && "${RECONCILER_FAIL_ON_CHANGES:-false}" != "true" ]]; then
  exit 0
fi
exit "$code"
