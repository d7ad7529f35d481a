# End-to-end runs of the hvgate binary on the sample program export.
add_test(NAME integration.map_sample
  COMMAND ${CMAKE_CURRENT_LIST_DIR}/map_sample.sh $<TARGET_FILE:hvgate>
          ${CMAKE_SOURCE_DIR} ${CMAKE_CURRENT_BINARY_DIR}/map_sample)
add_test(NAME integration.cli
  COMMAND ${CMAKE_CURRENT_LIST_DIR}/cli.sh $<TARGET_FILE:hvgate>
          ${CMAKE_SOURCE_DIR} ${CMAKE_CURRENT_BINARY_DIR}/cli)
add_test(NAME integration.readers
  COMMAND ${CMAKE_CURRENT_LIST_DIR}/readers.sh $<TARGET_FILE:hvgate>
          ${CMAKE_SOURCE_DIR} ${CMAKE_CURRENT_BINARY_DIR}/readers)
# Delivery end to end against the FHIR test peer (tests/peer): exactly once,
# idempotent re-ingest, updates, faults and outages, SMART auth, consent.
add_test(NAME integration.deliver
  COMMAND node ${CMAKE_CURRENT_LIST_DIR}/deliver.js $<TARGET_FILE:hvgate>
          ${CMAKE_SOURCE_DIR} ${CMAKE_CURRENT_BINARY_DIR}/deliver)
set_tests_properties(integration.deliver PROPERTIES FIXTURES_REQUIRED peer_npm
                     TIMEOUT 600)
# SIGKILL at random moments while delivering 10,000 records: nothing lost,
# nothing twice.
add_test(NAME integration.kill
  COMMAND node ${CMAKE_CURRENT_LIST_DIR}/kill.js $<TARGET_FILE:hvgate>
          $<TARGET_FILE:gen_records> ${CMAKE_SOURCE_DIR}
          ${CMAKE_CURRENT_BINARY_DIR}/kill)
set_tests_properties(integration.kill PROPERTIES FIXTURES_REQUIRED peer_npm
                     TIMEOUT 900)
# The closed loop both ways against the FHIR test peer: push, poll and
# subscription status return, scoping, practice -> home visiting referrals
# and results in the program's export, status changes from later exports;
# what the endpoint emits is validated (conformance fixture).
add_test(NAME integration.loop
  COMMAND node ${CMAKE_CURRENT_LIST_DIR}/loop.js $<TARGET_FILE:hvgate>
          ${CMAKE_SOURCE_DIR} ${CMAKE_CURRENT_BINARY_DIR}/loop)
set_tests_properties(integration.loop PROPERTIES
                     FIXTURES_REQUIRED "peer_npm;conformance_npm" TIMEOUT 600)
