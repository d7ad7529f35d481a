#!/usr/bin/env bash
# The sample export as a nested JSON array, XML and NDJSON
# (tests/data/program-export-alt, made from the CSV by make.py) must give
# byte-identical Bundles to the CSV export and the same 8 rejections, at the
# lines of the records in those files, with the source's own key names.
set -uo pipefail
hvgate=$1 src=$2 out=$3
mkdir -p "$out"
csv=$src/tests/data/program-export alt=$src/tests/data/program-export-alt
fail=0
"$hvgate" map -m "$src/conf/mappings/program-export.json" --today 2026-11-23 \
  "$csv/screenings.csv" "$csv/referrals.csv" "$csv/consents.csv" \
  --format ndjson -o "$out/csv.ndjson" 2>"$out/csv.err"
"$hvgate" map -m "$src/tests/data/mappings/program-export-alt.json" --today 2026-11-23 \
  "$alt/screenings.json" "$alt/referrals.xml" "$alt/consents.ndjson" \
  --format ndjson -o "$out/alt.ndjson" 2>"$out/alt.err"
rc=$?
[ "$rc" -eq 65 ] || { echo "exit status $rc, expected 65"; fail=1; }
[ "$(wc -l <"$out/csv.ndjson")" -eq 410 ] || { echo "CSV run: expected 410 Bundles"; fail=1; }
cmp -s "$out/csv.ndjson" "$out/alt.ndjson" || { echo "JSON/XML/NDJSON Bundles differ from CSV"; fail=1; }
check() { if ! grep -qF -- "$1" "$out/$2"; then echo "MISSING in $2: $1"; fail=1; fi; }
check "screenings.json:7: screen_date: 2026-02-30 does not exist" alt.err
check "screenings.json:19: child.id: required value is empty" alt.err
check "screenings.json:27: child.dob: child's birth date is after the screening date (screen_date)" alt.err
check "referrals.xml:7: reason: screening 'S9999999' is not in this export" alt.err
check "referrals.xml:13: date: required value is empty" alt.err
check "hvgate map: 418 records: 410 mapped, 8 rejected, 4 warnings" alt.err

# XML screenings alone: the same Bundles as the CSV screenings
"$hvgate" map -m "$src/conf/mappings/program-export.json" --today 2026-11-23 \
  "$csv/screenings.csv" --format ndjson -o "$out/csv-s.ndjson" 2>/dev/null
"$hvgate" map -m "$src/tests/data/mappings/program-export-alt.json" --today 2026-11-23 \
  "$alt/screenings.xml" --format ndjson -o "$out/xml-s.ndjson" 2>"$out/xml.err"
cmp -s "$out/csv-s.ndjson" "$out/xml-s.ndjson" || { echo "XML screenings differ from CSV"; fail=1; }
check "screenings.xml:13: date: 2026-02-30 does not exist" xml.err
check "screenings.xml:49: child/@id: required value is empty" xml.err
check "hvgate map: 157 records: 151 mapped, 6 rejected" xml.err

# an XML export with a DOCTYPE is refused as a whole, with the reason
printf '<?xml version="1.0"?>\n<!DOCTYPE export [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n<export><screenings><screening id="&x;"/></screenings></export>\n' >"$out/screenings-xxe.xml"
"$hvgate" map -m "$src/tests/data/mappings/program-export-alt.json" \
  "$out/screenings-xxe.xml" -o "$out/xxe.ndjson" 2>"$out/xxe.err"
rc=$?
[ "$rc" -ne 0 ] || { echo "XXE document accepted"; fail=1; }
check "DOCTYPE is not allowed" xxe.err
if grep -q "root:" "$out/xxe.err" "$out/xxe.ndjson" 2>/dev/null; then echo "file content leaked"; fail=1; fi
exit $fail
