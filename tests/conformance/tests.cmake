# FHIR conformance: what hvgate emits must validate against the official R4
# definitions (@medplum/core 4.x validator + required-binding checks).
# Node is required: CI must not skip these silently.
find_program(NODE_EXE node REQUIRED)
set(HVG_CONF_DIR ${CMAKE_CURRENT_LIST_DIR})
add_test(NAME conformance.setup COMMAND ${HVG_CONF_DIR}/setup.sh)
set_tests_properties(conformance.setup PROPERTIES FIXTURES_SETUP conformance_npm)
add_test(NAME conformance.validator_selftest COMMAND ${HVG_CONF_DIR}/selftest.sh)
# hvg_add_conformance_test(NAME FILE COMMAND...): run COMMAND (which writes
# FILE), then validate FILE.
function(hvg_add_conformance_test name file)
  add_test(NAME conformance.${name}
    COMMAND sh -c "\"$@\"; rc=$?; [ $rc -eq 0 ] || [ $rc -eq 65 ] || exit $rc; ${NODE_EXE} ${HVG_CONF_DIR}/validate.js ${file}"
            sh ${ARGN})
  set_tests_properties(conformance.${name} PROPERTIES FIXTURES_REQUIRED conformance_npm)
endfunction()
set(HVG_SAMPLE ${CMAKE_SOURCE_DIR}/tests/data/program-export)
hvg_add_conformance_test(map_sample ${CMAKE_CURRENT_BINARY_DIR}/conformance_sample.ndjson
  $<TARGET_FILE:hvgate> map -q -m ${CMAKE_SOURCE_DIR}/conf/mappings/program-export.json
  --today 2026-11-23 -o ${CMAKE_CURRENT_BINARY_DIR}/conformance_sample.ndjson
  ${HVG_SAMPLE}/screenings.csv ${HVG_SAMPLE}/referrals.csv ${HVG_SAMPLE}/consents.csv)
hvg_add_conformance_test(map_sample_collection ${CMAKE_CURRENT_BINARY_DIR}/conformance_sample.json
  $<TARGET_FILE:hvgate> map -q -f json -m ${CMAKE_SOURCE_DIR}/conf/mappings/program-export.json
  --today 2026-11-23 -o ${CMAKE_CURRENT_BINARY_DIR}/conformance_sample.json
  ${HVG_SAMPLE}/screenings.csv ${HVG_SAMPLE}/referrals.csv ${HVG_SAMPLE}/consents.csv)
set_tests_properties(conformance.validator_selftest PROPERTIES FIXTURES_REQUIRED conformance_npm)
# The JSON Schemas of conf/ (Ajv, draft 2020-12): shipped mappings and
# catalogues validate; schema and `hvgate check-mapping` agree on
# fixtures/mapping-bad-*.json and on variants of a valid mapping.
add_test(NAME conformance.schemas
  COMMAND ${NODE_EXE} ${HVG_CONF_DIR}/schemas.js ${CMAKE_SOURCE_DIR} $<TARGET_FILE:hvgate>)
set_tests_properties(conformance.schemas PROPERTIES FIXTURES_REQUIRED conformance_npm)
