#!/usr/bin/env bash
# Self-test of the FHIR test peer: starts server.js (port 0, SMART auth, an
# RSA-2048 and an EC P-384 client key), exercises it with curl, stops it.
# Exit 0 when every check passes.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
fails=0
ok() { echo "ok   - $1"; }
bad() { echo "FAIL - $1"; fails=$((fails + 1)); }
check() { # check NAME TEST...
  local name=$1; shift
  if "$@"; then ok "$name"; else bad "$name"; fi
}
# jget FILE EXPR: evaluate a JS expression on the JSON document j.
jget() { node -e 'const j=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));const v=('"$2"');process.stdout.write(typeof v==="string"?v:JSON.stringify(v))' "$1"; }

# --- keys: registered RSA and EC, and an RSA key the peer does not know
cd "$tmp"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.pem 2>/dev/null &&
  openssl pkey -in rsa.pem -pubout -out rsa.pub &&
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out ec.pem 2>/dev/null &&
  openssl pkey -in ec.pem -pubout -out ec.pub &&
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out wrong.pem 2>/dev/null ||
  { echo "openssl failed"; exit 1; }

node "$here/server.js" --port 0 --auth smart --public-key rsa.pub --public-key ec.pub \
  --ready-file ready 2>peer.log &
pid=$!
for _ in $(seq 1 300); do [ -s ready ] && break; sleep 0.1; done
[ -s ready ] || { echo "peer did not start"; cat peer.log; exit 1; }
port=$(cat ready)
origin=http://127.0.0.1:$port
base=$origin/fhir/R4
echo "# peer on port $port"

# req METHOD URL [curl args...]: body to out.json, status on stdout
req() { local m=$1 u=$2; shift 2; curl -s -o out.json -D hdr.txt -w '%{http_code}' -X "$m" "$@" "$u"; }
assertion() { node "$here/make_assertion.js" --client hvgate-test --aud "$origin/oauth2/token" "$@"; }
token_req() { # token_req ASSERTION -> status; body in out.json
  req POST "$origin/oauth2/token" -H 'Content-Type: application/x-www-form-urlencoded' \
    --data-urlencode grant_type=client_credentials --data-urlencode 'scope=system/*.write system/*.read' \
    --data-urlencode client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer \
    --data-urlencode "client_assertion=$1"
}

# --- discovery and metadata (no token needed)
s=$(req GET "$base/.well-known/smart-configuration")
check "smart-configuration" test "$s" = 200 -a "$(jget out.json 'j.token_endpoint')" = "$origin/oauth2/token" \
  -a "$(jget out.json 'j.token_endpoint_auth_signing_alg_values_supported.join()')" = "RS384,ES384" \
  -a "$(jget out.json 'j.token_endpoint_auth_methods_supported.join()')" = "private_key_jwt"
s=$(req GET "$base/metadata")
check "metadata without token" test "$s" = 200 -a "$(jget out.json 'j.resourceType+j.fhirVersion')" = "CapabilityStatement4.0.1"
s=$(req GET "$base/Patient")
check "FHIR without token -> 401 OperationOutcome" test "$s" = 401 -a "$(jget out.json 'j.resourceType')" = OperationOutcome

# --- tokens with both algorithms
s=$(token_req "$(assertion --key rsa.pem --alg RS384 --kid rsa1)")
check "RS384 assertion -> token" test "$s" = 200 -a "$(jget out.json 'j.token_type+j.expires_in')" = bearer300
rs_token=$(jget out.json 'j.access_token')
s=$(token_req "$(assertion --key ec.pem --alg ES384 --kid ec1)")
check "ES384 assertion -> token" test "$s" = 200
tok=$(jget out.json 'j.access_token')
auth=(-H "Authorization: Bearer $tok")
s=$(req GET "$base/Patient" -H "Authorization: Bearer $rs_token")
check "RS384 token accepted" test "$s" = 200

# --- refused assertions
s=$(token_req "$(assertion --key wrong.pem --alg RS384)")
check "wrong key -> 401 invalid_client" test "$s" = 401 -a "$(jget out.json 'j.error')" = invalid_client
s=$(token_req "$(assertion --key rsa.pem --alg ES384)")
check "alg not matching the key -> 401" test "$s" = 401
a=$(assertion --key ec.pem --alg ES384 --jti replay-1)
s1=$(token_req "$a"); s2=$(token_req "$a")
check "replayed jti -> rejected" test "$s1" = 200 -a "$s2" = 401 -a "$(jget out.json 'j.error_description')" = "jti already used (replayed assertion)"
s=$(token_req "$(assertion --key rsa.pem --alg RS384 --exp-in -5)")
check "expired assertion -> 401" test "$s" = 401
s=$(token_req "$(assertion --key rsa.pem --alg RS384 --exp-in 900)")
check "exp > 5 min ahead -> 401" test "$s" = 401
s=$(token_req "$(node "$here/make_assertion.js" --key rsa.pem --alg RS384 --client hvgate-test --aud http://elsewhere/token)")
check "wrong aud -> 401" test "$s" = 401
s=$(req GET "$base/Patient" -H "Authorization: Bearer not-a-token")
check "unknown token -> 401" test "$s" = 401

# --- transaction with conditional creates, posted twice
P=urn:uuid:6f1c1a52-3c4e-4b55-9a0e-1d2e3f405161
O=urn:uuid:6f1c1a52-3c4e-4b55-9a0e-1d2e3f405162
cat >tx.json <<EOF
{"resourceType":"Bundle","type":"transaction","entry":[
 {"fullUrl":"$O","resource":{"resourceType":"Observation","status":"final",
   "identifier":[{"system":"urn:hvgate:test:obs","value":"O-1"}],
   "code":{"coding":[{"system":"http://loinc.org","code":"71354-5"}]},
   "subject":{"reference":"$P"},"effectiveDateTime":"2026-01-02","valueInteger":3},
  "request":{"method":"POST","url":"Observation","ifNoneExist":"identifier=urn:hvgate:test:obs|O-1"}},
 {"fullUrl":"$P","resource":{"resourceType":"Patient",
   "identifier":[{"system":"urn:hvgate:test:child","value":"C-1"}],"birthDate":"2025-03-04"},
  "request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=urn:hvgate:test:child|C-1"}}]}
EOF
s=$(req POST "$base" "${auth[@]}" -H 'Content-Type: application/fhir+json' --data-binary @tx.json)
check "transaction 1 -> 200 transaction-response" test "$s" = 200 -a "$(jget out.json 'j.type')" = transaction-response
st1=$(jget out.json 'j.entry.map(e=>e.response.status).join()')
loc1=$(jget out.json 'j.entry.map(e=>e.response.location).join()')
check "transaction 1 entries 201 with Type/id/_history/vid" test "$st1" = "201 Created,201 Created" -a \
  "$(jget out.json 'j.entry.every((e,i)=>new RegExp("^"+["Observation","Patient"][i]+"/[A-Za-z0-9.-]+/_history/1$").test(e.response.location))')" = true
s=$(req POST "$base" "${auth[@]}" -H 'Content-Type: application/fhir+json' --data-binary @tx.json)
check "transaction 2 -> entries 200, same locations" test "$s" = 200 -a \
  "$(jget out.json 'j.entry.map(e=>e.response.status).join()')" = "200 OK,200 OK" -a \
  "$(jget out.json 'j.entry.map(e=>e.response.location).join()')" = "$loc1"
pid_ref=$(echo "$loc1" | cut -d, -f2 | cut -d/ -f1-2)
s=$(req GET "$base/Patient?identifier=urn:hvgate:test:child|C-1" "${auth[@]}")
check "search Patient by identifier: exactly one" test "$s" = 200 -a "$(jget out.json 'j.total')" = 1
s=$(req GET "$base/Patient" "${auth[@]}")
check "exactly one Patient" test "$(jget out.json 'j.total')" = 1
s=$(req GET "$base/Observation" "${auth[@]}")
check "exactly one Observation, subject -> the Patient's real id" test "$(jget out.json 'j.total')" = 1 -a \
  "$(jget out.json 'j.entry[0].resource.subject.reference')" = "$pid_ref"
s=$(req GET "$base/Observation?subject=$pid_ref&_lastUpdated=gt2020-01-01" "${auth[@]}")
check "search by subject and _lastUpdated" test "$s" = 200 -a "$(jget out.json 'j.total')" = 1
s=$(req GET "$base/$pid_ref" "${auth[@]}")
check "read Patient with ETag" test "$s" = 200 -a "$(tr -d '\r' <hdr.txt | grep -i '^etag:')" = 'ETag: W/"1"'

jget out.json '{...j, gender:"female"}' >pat.json
s=$(req PUT "$base/$pid_ref" "${auth[@]}" -H 'Content-Type: application/fhir+json' -H 'If-Match: W/"1"' --data-binary @pat.json)
check "PUT update -> version 2" test "$s" = 200 -a "$(jget out.json 'j.meta.versionId')" = 2
s=$(req PUT "$base/$pid_ref" "${auth[@]}" -H 'Content-Type: application/fhir+json' -H 'If-Match: W/"1"' --data-binary @pat.json)
check "PUT with stale If-Match -> 412" test "$s" = 412

# --- Task searches (owner, status, focus, patient); upper-case urn:uuid
# placeholders are matched case-insensitively (RFC 4122)
SR=urn:uuid:7a000000-0000-4000-8000-00000000000a
cat >task.json <<EOF
{"resourceType":"Bundle","type":"transaction","entry":[
 {"fullUrl":"$SR","resource":{"resourceType":"ServiceRequest","status":"active","intent":"order",
   "identifier":[{"system":"urn:hvgate:test:sr","value":"S-1"}],"subject":{"reference":"$pid_ref"}},
  "request":{"method":"POST","url":"ServiceRequest","ifNoneExist":"identifier=urn:hvgate:test:sr|S-1"}},
 {"fullUrl":"urn:uuid:7a000000-0000-4000-8000-00000000000b","resource":{"resourceType":"Task","status":"requested","intent":"order",
   "identifier":[{"system":"urn:hvgate:test:task","value":"T-1"}],"focus":{"reference":"${SR^^}"},
   "for":{"reference":"$pid_ref"},"owner":{"reference":"Organization/practice-1"}},
  "request":{"method":"POST","url":"Task","ifNoneExist":"identifier=urn:hvgate:test:task|T-1"}}]}
EOF
s=$(req POST "$base" "${auth[@]}" -H 'Content-Type: application/fhir+json' --data-binary @task.json)
sr_ref=$(jget out.json 'j.entry[0].response.location.split("/").slice(0,2).join("/")')
check "transaction with ServiceRequest + Task" test "$s" = 200
s=$(req GET "$base/Task?owner=Organization/practice-1&status=requested&focus=$sr_ref&patient=$pid_ref" "${auth[@]}")
check "Task search by owner, status, focus, patient" test "$s" = 200 -a "$(jget out.json 'j.total')" = 1 -a \
  "$(jget out.json 'j.entry[0].resource.focus.reference')" = "$sr_ref"
s=$(req GET "$base/Task?owner=Organization/practice-1&status=completed" "${auth[@]}")
check "Task search by other status: none" test "$s" = 200 -a "$(jget out.json 'j.total')" = 0
# --- a failed transaction leaves nothing behind
cat >bad.json <<EOF
{"resourceType":"Bundle","type":"transaction","entry":[
 {"fullUrl":"urn:uuid:00000000-0000-4000-8000-000000000001","resource":{"resourceType":"Patient",
   "identifier":[{"system":"urn:hvgate:test:child","value":"C-2"}]},"request":{"method":"POST","url":"Patient"}},
 {"resource":$(cat pat.json),"request":{"method":"PUT","url":"$pid_ref","ifMatch":"W/\"1\""}}]}
EOF
s=$(req POST "$base" "${auth[@]}" -H 'Content-Type: application/fhir+json' --data-binary @bad.json)
s2=$(req GET "$base/Patient?identifier=C-2" "${auth[@]}")
check "failed transaction (412) rolled back" test "$s" = 412 -a "$(jget out.json 'j.total')" = 0
sed 's/"subject":{"reference":"[^"]*"}/"subject":{"reference":"urn:uuid:00000000-0000-4000-8000-0000000000ff"}/' tx.json |
  sed 's/O-1/O-9/g' >dangling.json
s=$(req POST "$base" "${auth[@]}" -H 'Content-Type: application/fhir+json' --data-binary @dangling.json)
check "unresolvable urn:uuid reference -> 400" test "$s" = 400
sed 's/"valueInteger":3/"valueInteger":"three"/; s/O-1/O-8/g' tx.json >invalid.json
s=$(req POST "$base" "${auth[@]}" -H 'Content-Type: application/fhir+json' --data-binary @invalid.json)
check "invalid resource -> 400 OperationOutcome" test "$s" = 400 -a "$(jget out.json 'j.resourceType')" = OperationOutcome

# --- more than 8 conditional entries in one transaction (Medplum's limit)
node -e '
const e=[];for(let i=0;i<10;i++)e.push({fullUrl:"urn:uuid:11111111-2222-4333-8444-"+String(i).padStart(12,"0"),
 resource:{resourceType:"Patient",identifier:[{system:"urn:hvgate:test:big",value:"B-"+i}]},
 request:{method:"POST",url:"Patient",ifNoneExist:"identifier=urn:hvgate:test:big|B-"+i}});
process.stdout.write(JSON.stringify({resourceType:"Bundle",type:"transaction",entry:e}))' >big.json
s=$(req POST "$base" "${auth[@]}" -H 'Content-Type: application/fhir+json' --data-binary @big.json)
s2=$(req POST "$base" "${auth[@]}" -H 'Content-Type: application/fhir+json' --data-binary @big.json)
req GET "$base/Patient?identifier=urn:hvgate:test:big|B-7" "${auth[@]}" >/dev/null
check "10 conditional creates in one transaction, twice" test "$s" = 200 -a "$s2" = 200 -a "$(jget out.json 'j.total')" = 1

# --- fault injection
curl -s -o /dev/null -X POST "$origin/_peer/fault" -d '{"status":503,"count":1,"retry_after":2}'
s=$(req GET "$base/Patient" "${auth[@]}")
ra=$(tr -d '\r' <hdr.txt | awk -F': ' 'tolower($1)=="retry-after"{print $2}')
s2=$(req GET "$base/Patient" "${auth[@]}")
check "503 with Retry-After once, then success" test "$s" = 503 -a "$ra" = 2 -a "$s2" = 200
curl -s -o /dev/null -X POST "$origin/_peer/fault" -d '{"drop":1}'
curl -s -o /dev/null "$base/Patient" "${auth[@]}"; rc=$?
s2=$(req GET "$base/Patient" "${auth[@]}")
check "drop: connection closed without an answer, then success" test "$rc" = 52 -a "$s2" = 200
curl -s -o /dev/null -X POST "$origin/_peer/fault" -d '{"drop":1,"phase":"after"}'
sed 's/O-1/O-3/g; s/C-1/C-3/g' tx.json >tx3.json
curl -s -o /dev/null "$base" "${auth[@]}" -H 'Content-Type: application/fhir+json' --data-binary @tx3.json; rc=$?
s=$(req POST "$base" "${auth[@]}" -H 'Content-Type: application/fhir+json' --data-binary @tx3.json)
check "drop after commit: retry finds the resources (200, not 201)" test "$rc" = 52 -a "$s" = 200 -a \
  "$(jget out.json 'j.entry.map(e=>e.response.status).join()')" = "200 OK,200 OK"
curl -s -o /dev/null -X POST "$origin/_peer/fault" -d '{"delay_ms":300,"count":1}'
t0=$(date +%s%N); s=$(req GET "$base/metadata"); t1=$(date +%s%N)
check "delay fault" test "$s" = 200 -a $(((t1 - t0) / 1000000)) -ge 300

# --- token expiry: 401, then a fresh token works
curl -s -o /dev/null -X POST "$origin/_peer/expire-tokens"
s=$(req GET "$base/Patient" "${auth[@]}")
check "expired token -> 401 OperationOutcome" test "$s" = 401 -a "$(jget out.json 'j.resourceType')" = OperationOutcome
token_req "$(assertion --key ec.pem --alg ES384)" >/dev/null
s=$(req GET "$base/Patient" -H "Authorization: Bearer $(jget out.json 'j.access_token')")
check "refreshed token works" test "$s" = 200

# --- stats and reset
curl -s -o out.json "$origin/_peer/stats"
check "stats" test "$(jget out.json '[j.resources.Patient,j.resources.Observation,j.transactions.committed,j.tokens_issued>=4,j.auth_failures>=3].join()')" = "12,2,7,true,true"
curl -s -o /dev/null -X POST "$origin/_peer/reset"
curl -s -o out.json "$origin/_peer/stats"
check "reset clears data" test "$(jget out.json 'Object.keys(j.resources).length')" = 0
grep -q 'C-1\|O-1\|2025-03-04' peer.log && bad "log contains request data" || ok "log has no bodies or queries"

# --- clean shutdown
kill -TERM "$pid"; wait "$pid"; rc=$?; pid=
check "SIGTERM -> exit 0" test "$rc" = 0
if [ $fails -ne 0 ]; then
  echo "# peer log:"; tail -n 40 peer.log
  echo "peer selftest: $fails failure(s)"; exit 1
fi
echo "peer selftest: ok"
