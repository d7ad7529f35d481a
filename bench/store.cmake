# bench_store: durable intake and outbox throughput of the SQLite store
# (gateway/store.h). Included at the end of bench/CMakeLists.txt:
#   include(${CMAKE_CURRENT_SOURCE_DIR}/store.cmake)
add_executable(bench_store ${CMAKE_CURRENT_LIST_DIR}/bench_store.c)
target_link_libraries(bench_store PRIVATE hvg_gateway_lib)
target_compile_options(bench_store PRIVATE -Werror)
if(TARGET bench_tools)
  add_dependencies(bench_tools bench_store)
endif()
