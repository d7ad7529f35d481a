#!/usr/bin/env bash
# hvgate map on the sample program export: each of the 8 wrong rows is
# rejected with its reason (file:line: field: reason), the 4 referrals whose
# reason screening was rejected go through with a warning, every other row
# becomes exactly one Bundle, and the exit status is 65.
set -uo pipefail
hvgate=$1 src=$2 out=$3
mkdir -p "$out"
data=$src/tests/data/program-export
"$hvgate" map -m "$src/conf/mappings/program-export.json" --today 2026-11-23 \
  "$data/referrals.csv" "$data/consents.csv" "$data/screenings.csv" \
  -o "$out/bundles.ndjson" 2>"$out/stderr.txt"
rc=$?
fail=0
check() { if ! grep -qF -- "$1" "$out/stderr.txt"; then echo "MISSING: $1"; fail=1; fi; }
[ "$rc" -eq 65 ] || { echo "exit status $rc, expected 65"; fail=1; }
check "screenings.csv:5: screen_date: 2026-02-30 does not exist"
check "screenings.csv:9: instrument: instrument 'EPDS-X' is unknown"
check "screenings.csv:13: total_score: PHQ-2 score 999 is out of range (0-6)"
check "screenings.csv:17: child_id: required value is empty"
check "screenings.csv:21: total_score: 'twelve' is not a number"
check "screenings.csv:25: child_dob: child's birth date is after the screening date (screen_date)"
check "referrals.csv:4: reason_record_id: screening 'S9999999' is not in this export"
check "referrals.csv:7: referral_date: required value is empty"
for l in 8:S0000008:9 12:S0000012:13 16:S0000020:21 20:S0000024:25; do
  IFS=: read -r line sid sline <<<"$l"
  check "referrals.csv:$line: reason_record_id: warning: reason screening $sid was rejected (${data}/screenings.csv:$sline)"
done
# exactly the 8 rejections, no others
errors=$(grep -v ': warning: ' "$out/stderr.txt" | grep -c '^[^ ]*\.csv:[0-9]*: ')
[ "$errors" -eq 8 ] || { echo "expected 8 rejections, got $errors:"; grep -v ': warning: ' "$out/stderr.txt"; fail=1; }
# rows = 157 + 102 + 159 data lines; 8 rejected
bundles=$(wc -l <"$out/bundles.ndjson")
[ "$bundles" -eq 410 ] || { echo "expected 410 Bundles, got $bundles"; fail=1; }
check "hvgate map: 418 records: 410 mapped, 8 rejected"
# no personal data in messages: no sample names, birth dates or phones
if grep -E 'Sofía|Lopez|555-[0-9]{3}-[0-9]{4}|2024-02-19' "$out/stderr.txt"; then
  echo "personal data in messages"; fail=1
fi
# one Bundle per record: every Observation/ServiceRequest/Consent identifier once
dups=$(grep -o '"identifier":\[{"system":"https://sunrise-hv.example.org/fhir/id/\(screening\|referral\|consent\)","value":"[^"]*"' \
  "$out/bundles.ndjson" | sort | uniq -d | wc -l)
[ "$dups" -eq 0 ] || { echo "$dups record identifiers appear twice"; fail=1; }
[ $fail -eq 0 ] && echo "map_sample: ok" || cat "$out/stderr.txt"
exit $fail
