#!/usr/bin/env bash
# The validator must catch each problem planted in fixtures/bad.ndjson, or a
# clean run of hvgate's output would prove nothing.
set -uo pipefail
cd "$(dirname "$0")"
out=$(node validate.js fixtures/bad.ndjson 2>&1); rc=$?
fail=0
[ $rc -eq 1 ] || { echo "validator exit $rc on bad input, expected 1"; fail=1; }
for want in "Observation.status: 'done' is not in required value set" \
            "resolves to no entry of the Bundle" \
            "is not a lower-case RFC 4122 urn:uuid" \
            "transaction entry without request.method and request.url" \
            "Task.intent: 'bogus' is not in required value set" \
            "foo" \
            "Patient.gender: 'F' is not in required value set"; do
  grep -qF -- "$want" <<<"$out" || { echo "validator missed: $want"; fail=1; }
done
[ $fail -eq 0 ] && echo "validator selftest: ok" || echo "$out"
exit $fail
