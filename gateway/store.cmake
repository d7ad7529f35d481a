# The durable store (gateway/store.h, SQLite back end in store_sqlite.c).
# Included at the end of gateway/CMakeLists.txt, after hvg_gateway_lib exists.
pkg_check_modules(SQLITE3 REQUIRED IMPORTED_TARGET sqlite3)
target_link_libraries(hvg_gateway_lib PUBLIC PkgConfig::SQLITE3 OpenSSL::Crypto)
find_package(Threads REQUIRED)
target_link_libraries(hvg_gateway_lib PUBLIC Threads::Threads)
