# The FHIR test peer (tests/peer/server.js): a real FHIR R4 server on
# loopback (@medplum/fhir-router 4.5.2, in-memory) with a SMART Backend
# Services token endpoint, playing the pediatric practice in integration
# tests. Node is required: CI must not skip these silently.
# Tests that start the peer require the fixture: FIXTURES_REQUIRED peer_npm.
find_program(NODE_EXE node REQUIRED)
find_program(NPM_EXE npm REQUIRED)
set(HVG_PEER_DIR ${CMAKE_CURRENT_LIST_DIR})
add_test(NAME peer.setup COMMAND ${HVG_PEER_DIR}/setup.sh)
set_tests_properties(peer.setup PROPERTIES FIXTURES_SETUP peer_npm)
add_test(NAME peer.selftest COMMAND ${HVG_PEER_DIR}/selftest.sh)
set_tests_properties(peer.selftest PROPERTIES FIXTURES_REQUIRED peer_npm TIMEOUT 120)
