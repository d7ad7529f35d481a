# The durable store (gateway/store.h, SQLite back end in store_sqlite.c).
# Included at the end of gateway/CMakeLists.txt, after hvg_gateway_lib exists.
pkg_check_modules(SQLITE3 REQUIRED IMPORTED_TARGET sqlite3)
# zstd compresses the stored Bundles (store_zip.c); 1.4 has the dictionary
# and custom-allocator API it uses.
pkg_check_modules(ZSTD REQUIRED IMPORTED_TARGET libzstd>=1.4)
target_link_libraries(hvg_gateway_lib PUBLIC PkgConfig::SQLITE3 PkgConfig::ZSTD OpenSSL::Crypto)
find_package(Threads REQUIRED)
target_link_libraries(hvg_gateway_lib PUBLIC Threads::Threads)
