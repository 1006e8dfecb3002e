# Exposure policy over `reconciler plan --format json` (or `reconciler show plan.json --format json`).
#
#   reconciler plan --format json > plan.json
#   conftest test plan.json --policy examples/policy --namespace reconciler.exposure \
#       --data approvals.json          # {"approvals": ["alice", "bob"]}: who approved the pull request
#
# Rules (issue 27; docs/kinds/free-spin-event.md, "A policy over the JSON plan"):
#   1. no event over 100,000 stake without two approvals;
#   2. an event whose stake the plan cannot state (JDB did not return a factor) needs two approvals too;
#   3. no unbounded withdrawal ceiling without two approvals.
# Amounts in the plan are decimal strings (null = unknown); to_number converts them to compare.
# tests/jdb/test_policy_example.py evaluates these same rules against real plans (in Python: no Rego
# engine installs from the package index here) and checks every field this file reads exists in
# `reconciler schema plan`.
package reconciler.exposure

import rego.v1

max_stake := 100000

required_approvals := 2

approvals := count(object.get(data, "approvals", []))

granting contains c if {
	some c in input.changes
	c.exposure
	c.action != "delete"
}

deny contains msg if {
	some c in granting
	c.exposure.stake_after != null
	to_number(c.exposure.stake_after) > max_stake
	approvals < required_approvals
	msg := sprintf("%s: stake %s %v over %v needs %v approvals (has %v)", [c.key, c.exposure.stake_after, c.exposure.currency, max_stake, required_approvals, approvals])
}

deny contains msg if {
	some c in granting
	c.exposure.stake_after == null
	approvals < required_approvals
	msg := sprintf("%s: stake unknown needs %v approvals (has %v)", [c.key, required_approvals, approvals])
}

deny contains msg if {
	some c in granting
	c.exposure.ceiling_after == "unbounded"
	approvals < required_approvals
	msg := sprintf("%s: unbounded withdrawal ceiling needs %v approvals (has %v)", [c.key, required_approvals, approvals])
}
