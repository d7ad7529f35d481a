#!/usr/bin/env bash
# The command line's contract: --help, usage errors (64), mapping errors with
# file:line: pointer (78), unreadable input (66), output formats, --rejects,
# check-mapping, and other layouts handled by a mapping file alone.
set -uo pipefail
hvgate=$1 src=$2 out=$3
rm -rf "$out"; mkdir -p "$out"
data=$src/tests/data/program-export
map=$src/conf/mappings/program-export.json
fail=0
expect() { # expected-status description command...
  local want=$1 what=$2; shift 2
  "$@" >"$out/o.txt" 2>"$out/e.txt"; local rc=$?
  if [ "$rc" -ne "$want" ]; then
    echo "FAIL: $what: exit $rc, expected $want"; cat "$out/e.txt"; fail=1
  fi
}
has() { # file text
  grep -qF -- "$2" "$1" || { echo "FAIL: '$2' not in $1:"; cat "$1"; fail=1; }
}

expect 0 "hvgate --help" "$hvgate" --help
has "$out/o.txt" "map"
expect 0 "map --help" "$hvgate" map --help
has "$out/o.txt" "usage: hvgate map -m MAPPING"
expect 0 "check-mapping --help" "$hvgate" check-mapping --help
expect 64 "no command" "$hvgate"
expect 64 "unknown command" "$hvgate" frobnicate
expect 64 "map without mapping" "$hvgate" map "$data/screenings.csv"
expect 64 "map without inputs" "$hvgate" map -m "$map"
expect 64 "bad format" "$hvgate" map -m "$map" -f yaml "$data/screenings.csv"
expect 64 "unknown option" "$hvgate" map -m "$map" --frob "$data/screenings.csv"
expect 64 "file matching no source" "$hvgate" map -m "$map" "$src/README.md"
expect 66 "missing input" "$hvgate" map -m "$map" --source screenings "$out/nope.csv"
has "$out/e.txt" "nope.csv"
expect 66 "missing mapping" "$hvgate" map -m "$out/nope.json" "$data/screenings.csv"

# A broken mapping: every error with line and JSON pointer, exit 78.
cat >"$out/bad-mapping.json" <<'JSON'
{
  "program": {"id": "p1", "identifier_base": "not a uri"},
  "sources": [
    {
      "name": "s",
      "record_type": "screening",
      "format": "csv",
      "fields": {
        "record_id": "id",
        "child.idd": "child",
        "screening.date": {"from": "d", "date_format": "QQ/YYYY"},
        "referral.date": "x"
      }
    }
  ]
}
JSON
expect 78 "broken mapping" "$hvgate" check-mapping -m "$out/bad-mapping.json"
has "$out/e.txt" "bad-mapping.json:2: /program/identifier_base: must be an absolute URI"
has "$out/e.txt" "bad-mapping.json:10: /sources/0/fields/child.idd: 'child.idd' is not a canonical field"
has "$out/e.txt" "bad-mapping.json:11: /sources/0/fields/screening.date/date_format: 'QQ/YYYY' is not a date pattern"
has "$out/e.txt" "bad-mapping.json:12: /sources/0/fields/referral.date: 'referral.date' does not apply to screening records"
has "$out/e.txt" "/sources/0/fields: screening records need the field 'screening.instrument'"

# check-mapping against the sample: preview masks personal data.
expect 65 "check-mapping sample" "$hvgate" check-mapping -m "$map" --today 2026-11-23 "$data/screenings.csv"
has "$out/o.txt" "is valid: 4 sources"
has "$out/o.txt" "referrals        referral   21 fields, 12 export_fields"
has "$out/o.txt" "well_child_results well_child 17 fields, 2 export_fields"
has "$out/o.txt" "157 records as source 'screenings': 6 would be rejected"
has "$out/o.txt" "child.given                        (3 characters, masked)"
grep -q "Sofía" "$out/o.txt" && { echo "FAIL: preview shows a name"; fail=1; }

# --rejects, json and xml formats.
expect 65 "json + rejects" "$hvgate" map -m "$map" --today 2026-11-23 -f json \
  --rejects "$out/rejects.txt" -o "$out/all.json" "$data/screenings.csv" "$data/consents.csv"
has "$out/rejects.txt" "screenings.csv:5: screen_date:"
[ -s "$out/e.txt" ] && has "$out/e.txt" "316 records: 310 mapped, 6 rejected"
node -e '
  const b = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  if (b.resourceType !== "Bundle" || b.type !== "collection") throw "not a collection";
  if (b.entry.length !== 310) throw "entries " + b.entry.length;
  for (const e of b.entry) if (e.resource.type !== "transaction") throw "inner not transaction";
' "$out/all.json" || { echo "FAIL: json output"; fail=1; }
expect 65 "xml" "$hvgate" map -m "$map" --today 2026-11-23 -f xml --pretty -o "$out/all.xml" "$data/screenings.csv"
head -c 200 "$out/all.xml" | grep -q '<Bundle xmlns="http://hl7.org/fhir">' || { echo "FAIL: xml root"; fail=1; }
n=$(grep -c '<type value="transaction"/>' "$out/all.xml")
[ "$n" -eq 151 ] || { echo "FAIL: xml has $n transaction Bundles, expected 151"; fail=1; }

# --jobs: Bundles built on several threads come out byte for byte as with
# one, and so do rejections and warnings (input order), counts and status;
# json and xml are written by one thread whatever --jobs says.
expect 64 "jobs 0" "$hvgate" map -m "$map" --jobs 0 "$data/screenings.csv"
expect 64 "jobs not a number" "$hvgate" map -m "$map" -j two "$data/screenings.csv"
expect 64 "check-mapping has no --jobs" "$hvgate" check-mapping -m "$map" --jobs 2
for j in 1 2 7; do
  expect 65 "jobs $j" "$hvgate" map -m "$map" --today 2026-11-23 --jobs "$j" \
    -o "$out/jobs$j.ndjson" --rejects "$out/jobs$j.rej" \
    "$data/referrals.csv" "$data/screenings.csv" "$data/consents.csv"
  cp "$out/e.txt" "$out/jobs$j.err"
done
for j in 2 7; do
  for f in ndjson rej err; do
    cmp -s "$out/jobs1.$f" "$out/jobs$j.$f" || { echo "FAIL: --jobs $j: $f differs from --jobs 1"; fail=1; }
  done
done
has "$out/jobs7.err" "418 records: 410 mapped, 8 rejected, 4 warnings"
expect 65 "xml with jobs" "$hvgate" map -m "$map" --today 2026-11-23 -f xml --jobs 3 -o "$out/jobs.xml" "$data/screenings.csv"
cmp -s <("$hvgate" map -m "$map" --today 2026-11-23 -f xml --jobs 1 "$data/screenings.csv" 2>/dev/null) "$out/jobs.xml" \
  || { echo "FAIL: xml differs with --jobs"; fail=1; }
expect 74 "jobs, output error" "$hvgate" map -m "$map" --today 2026-11-23 --jobs 3 -o /dev/full "$data/screenings.csv" "$data/screenings.csv" "$data/screenings.csv" "$data/screenings.csv"
n=$(grep -c "cannot write output" "$out/e.txt")
[ "$n" -eq 1 ] || { echo "FAIL: output error reported $n times"; fail=1; }

# Another program's layout: semicolons, Latin-1, US dates, its own labels,
# and stdin. Only a mapping file differs, no code.
printf 'ID;Kind;Mother;Baby;Baby born;Date;Score;Visitor\r\n' >"$out/other.csv"
printf 'A1;Edinburgh;M1;B1;03/04/2025;7/5/2026;12;V1\r\n' >>"$out/other.csv"
printf 'A2;PHQ two;M2;B2;03/04/2025;13/5/2026;2;V1\r\n' >>"$out/other.csv"
printf 'A3;Edinburgh;M\xe9l;B3;03/04/2025;7/6/2026;9;V2\r\n' >>"$out/other.csv"
cat >"$out/other-mapping.json" <<JSON
{
  "program": {"id": "other-hv", "name": "Other HV", "identifier_base": "urn:other-hv:"},
  "catalogs": {"instruments": "$src/conf/catalog/instruments.json",
               "services": "$src/conf/catalog/services.json"},
  "sources": [{
    "name": "visits", "record_type": "screening", "files": ["*.csv"],
    "format": "csv", "delimiter": ";", "encoding": "latin1", "date_format": "M/D/YYYY",
    "fields": {
      "record_id": "ID",
      "screening.instrument": {"from": "Kind", "map": {"Edinburgh": "EPDS", "PHQ two": "PHQ-2"}},
      "caregiver.id": "Mother",
      "child.id": "Baby",
      "child.birth_date": {"from": "Baby born", "date_format": "MM/DD/YYYY"},
      "screening.date": "Date",
      "screening.total_score": "Score",
      "home_visitor.id": "Visitor",
      "caregiver.relationship": {"value": "mother"}
    }
  }]
}
JSON
expect 65 "other layout via stdin" sh -c "\"$hvgate\" map -m \"$out/other-mapping.json\" --source visits --today 2026-11-23 - < \"$out/other.csv\" > \"$out/other.ndjson\""
has "$out/e.txt" "-:3: Date: 13/5/2026 does not exist"
n=$(wc -l <"$out/other.ndjson")
[ "$n" -eq 2 ] || { echo "FAIL: other layout gave $n Bundles, expected 2"; fail=1; }
grep -q '"system":"urn:other-hv:caregiver","value":"M\\u00e9l"\|"value":"Mél"' "$out/other.ndjson" \
  || { echo "FAIL: Latin-1 caregiver id not converted"; fail=1; }

# check-config: the shipped example is valid; a broken one names file, line
# and key path; an unreadable one is 66; no file is usage
expect 0 "check-config --help" "$hvgate" check-config --help
has "$out/o.txt" "file:line: /json/pointer: reason"
expect 0 "check-config example" "$hvgate" check-config -c "$src/conf/hvgate.json"
has "$out/o.txt" "valid: 1 program, 2 partners"
sed -e 's|"mappings/program-export.json"|"'"$src"'/conf/mappings/program-export.json"|' \
    -e 's|"auth": { "type": "none" },|"auth": { "type": "bearer", "token": "s3cr3t" },|' \
    "$src/conf/hvgate.json" >"$out/bad-config.json"
expect 78 "check-config inline secret" "$hvgate" check-config -c "$out/bad-config.json"
has "$out/e.txt" "bad-config.json:20: /partners/0/auth/token: secrets are never written in the configuration"
if grep -q s3cr3t "$out/e.txt"; then echo "FAIL: secret echoed"; fail=1; fi
expect 66 "check-config missing file" "$hvgate" check-config -c "$out/nope.json"
expect 64 "check-config without -c" "$hvgate" check-config

[ $fail -eq 0 ] && echo "cli: ok"
exit $fail
