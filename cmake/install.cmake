# install.cmake - `cmake --install` rules for libzcrdma (included from the
# top-level CMakeLists.txt after src/). Installs:
#   LIBDIR/libzcrdma.so.MAJOR.MINOR.PATCH, .so.MAJOR (SONAME), .so, libzcrdma.a
#   INCLUDEDIR/zcrdma.h
#   LIBDIR/pkgconfig/zcrdma.pc
#   LIBDIR/cmake/zcrdma/zcrdma{Config,ConfigVersion,Targets*}.cmake
# Tests, examples and benchmarks are never installed.
include(CMakePackageConfigHelpers)

set(ZC_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/zcrdma CACHE STRING
  "Where zcrdmaConfig.cmake is installed (relative to the prefix)")
mark_as_advanced(ZC_INSTALL_CMAKEDIR)

install(TARGETS zcrdma zcrdma_static EXPORT zcrdmaTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT Runtime
    NAMELINK_COMPONENT Development
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT Development
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT Runtime)
install(FILES ${PROJECT_SOURCE_DIR}/include/zcrdma.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT Development)

# find_package(zcrdma): zcrdma::zcrdma (shared) and zcrdma::zcrdma_static.
install(EXPORT zcrdmaTargets NAMESPACE zcrdma:: DESTINATION ${ZC_INSTALL_CMAKEDIR}
  COMPONENT Development)
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/zcrdmaConfig.cmake.in
  ${PROJECT_BINARY_DIR}/cmake/zcrdmaConfig.cmake
  INSTALL_DESTINATION ${ZC_INSTALL_CMAKEDIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/cmake/zcrdmaConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/cmake/zcrdmaConfig.cmake
  ${PROJECT_BINARY_DIR}/cmake/zcrdmaConfigVersion.cmake
  DESTINATION ${ZC_INSTALL_CMAKEDIR} COMPONENT Development)

# zcrdma.pc is generated at install time, so that it names the prefix really
# installed to (`cmake --install build --prefix P` included), not the one
# configured. DESTDIR staging still records the final prefix.
install(CODE "set(_zc_pc_in \"${CMAKE_CURRENT_LIST_DIR}/zcrdma.pc.in\")
set(_zc_pc_out \"${PROJECT_BINARY_DIR}/cmake/zcrdma.pc\")
set(_zc_pc_version \"${PROJECT_VERSION}\")
set(_zc_pc_libdir \"${CMAKE_INSTALL_LIBDIR}\")
set(_zc_pc_includedir \"${CMAKE_INSTALL_INCLUDEDIR}\")" COMPONENT Development)
install(CODE [[
  set(ZC_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  set(ZC_PC_VERSION "${_zc_pc_version}")
  foreach(_zc_dir IN ITEMS libdir includedir)
    if(IS_ABSOLUTE "${_zc_pc_${_zc_dir}}")
      set(_zc_pc_${_zc_dir}_abs "${_zc_pc_${_zc_dir}}")
      set(_zc_pc_${_zc_dir}_pc "${_zc_pc_${_zc_dir}}")
    else()
      set(_zc_pc_${_zc_dir}_abs "${CMAKE_INSTALL_PREFIX}/${_zc_pc_${_zc_dir}}")
      set(_zc_pc_${_zc_dir}_pc "\${prefix}/${_zc_pc_${_zc_dir}}")
    endif()
  endforeach()
  set(ZC_PC_LIBDIR "${_zc_pc_libdir_pc}")
  set(ZC_PC_INCLUDEDIR "${_zc_pc_includedir_pc}")
  configure_file("${_zc_pc_in}" "${_zc_pc_out}" @ONLY)
  file(INSTALL DESTINATION "${_zc_pc_libdir_abs}/pkgconfig" TYPE FILE FILES "${_zc_pc_out}")
]] COMPONENT Development)
