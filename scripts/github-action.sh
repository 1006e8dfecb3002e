#!/usr/bin/env bash
# The run step of action.yml (kept in a file so that tests run it as it is).
# Inputs come as RECONCILER_* environment variables; GITHUB_STEP_SUMMARY and GITHUB_OUTPUT are the
# files GitHub provides. Exits with reconciler's exit code (see action.yml).
set -uo pipefail

command="${RECONCILER_COMMAND:-plan}"
read -r -a paths <<< "${RECONCILER_PATHS:-}"
read -r -a extra <<< "${RECONCILER_ARGS:-}"
config="${RECONCILER_CONFIG:-reconciler.yaml}"
plan_file="${RECONCILER_PLAN_FILE:-}"
report="${RUNNER_TEMP:-.}/reconciler-report.md"
common=(--config "$config" "${extra[@]}")

case "$command" in
  validate)
    reconciler validate "${paths[@]}" "${common[@]}" 2>&1 | tee "$report"
    code=${PIPESTATUS[0]}
    ;;
  plan)
    out=()
    [[ -n "$plan_file" ]] && out=(--out "$plan_file")
    reconciler plan "${paths[@]}" "${common[@]}" "${out[@]}" --format markdown --detailed-exitcode > "$report"
    code=$?
    ;;
  drift)
    reconciler plan "${paths[@]}" "${common[@]}" --drift --format markdown > "$report"
    code=$?
    ;;
  apply)
    if [[ -n "$plan_file" ]]; then
      reconciler apply "$plan_file" "${common[@]}" --format markdown | tee "$report"
    else
      reconciler apply "${paths[@]}" "${common[@]}" --auto-approve --format markdown | tee "$report"
    fi
    code=${PIPESTATUS[0]}
    ;;
  *)
    echo "reconciler action: command must be validate, plan, apply or drift (got '$command')" >&2
    exit 1
    ;;
esac

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
  } >> "$GITHUB_OUTPUT"
fi
# a plan with changes is a successful plan unless asked otherwise
if [[ "$command" == plan && $code -eq 2 && "${RECONCILER_FAIL_ON_CHANGES:-false}" != "true" ]]; then
  exit 0
fi
exit "$code"
