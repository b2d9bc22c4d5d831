# FindCAF: locates the C++ Actor Framework (Debian's libcaf-dev ships no CMake
# package configuration).
#
#   find_package(CAF 0.17.6 REQUIRED COMPONENTS core io openssl)
#
# Creates the imported targets CAF::core, CAF::io and CAF::openssl, and sets
# CAF_FOUND, CAF_VERSION and CAF_INCLUDE_DIR. CAF_ROOT (a prefix with include/
# and lib/) is honoured, e.g. for an unpacked Debian package on another machine.

set(_caf_known_components core io openssl)
if(NOT CAF_FIND_COMPONENTS)
  set(CAF_FIND_COMPONENTS core)
endif()

find_path(CAF_INCLUDE_DIR caf/config.hpp
  HINTS ${CAF_ROOT} ENV CAF_ROOT
  PATH_SUFFIXES include usr/include)

if(CAF_INCLUDE_DIR AND EXISTS "${CAF_INCLUDE_DIR}/caf/config.hpp")
  file(STRINGS "${CAF_INCLUDE_DIR}/caf/config.hpp" _caf_version_line
       REGEX "^#define CAF_VERSION [0-9]+")
  string(REGEX REPLACE "^#define CAF_VERSION ([0-9]+).*" "\\1" _caf_version_num
         "${_caf_version_line}")
  math(EXPR _caf_major "${_caf_version_num} / 10000")
  math(EXPR _caf_minor "(${_caf_version_num} / 100) % 100")
  math(EXPR _caf_patch "${_caf_version_num} % 100")
  set(CAF_VERSION "${_caf_major}.${_caf_minor}.${_caf_patch}")
endif()

# openssl needs io, io needs core.
if("openssl" IN_LIST CAF_FIND_COMPONENTS AND NOT "io" IN_LIST CAF_FIND_COMPONENTS)
  list(APPEND CAF_FIND_COMPONENTS io)
endif()
if(NOT "core" IN_LIST CAF_FIND_COMPONENTS)
  list(APPEND CAF_FIND_COMPONENTS core)
endif()

foreach(_comp IN LISTS CAF_FIND_COMPONENTS)
  if(NOT _comp IN_LIST _caf_known_components)
    message(FATAL_ERROR "FindCAF: unknown component '${_comp}' (known: ${_caf_known_components})")
  endif()
  find_library(CAF_${_comp}_LIBRARY NAMES caf_${_comp}
    HINTS ${CAF_ROOT} ENV CAF_ROOT
    PATH_SUFFIXES lib lib/x86_64-linux-gnu usr/lib/x86_64-linux-gnu)
  if(CAF_${_comp}_LIBRARY)
    set(CAF_${_comp}_FOUND TRUE)
  endif()
  mark_as_advanced(CAF_${_comp}_LIBRARY)
endforeach()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(CAF
  REQUIRED_VARS CAF_INCLUDE_DIR
  VERSION_VAR CAF_VERSION
  HANDLE_COMPONENTS)
mark_as_advanced(CAF_INCLUDE_DIR)

if(CAF_FOUND)
  find_package(Threads REQUIRED)
  if(CAF_core_FOUND AND NOT TARGET CAF::core)
    add_library(CAF::core UNKNOWN IMPORTED)
    set_target_properties(CAF::core PROPERTIES
      IMPORTED_LOCATION "${CAF_core_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${CAF_INCLUDE_DIR}"
      INTERFACE_LINK_LIBRARIES Threads::Threads
      INTERFACE_COMPILE_FEATURES cxx_std_17)
  endif()
  if(CAF_io_FOUND AND NOT TARGET CAF::io)
    add_library(CAF::io UNKNOWN IMPORTED)
    set_target_properties(CAF::io PROPERTIES
      IMPORTED_LOCATION "${CAF_io_LIBRARY}"
      INTERFACE_LINK_LIBRARIES CAF::core)
  endif()
  if(CAF_openssl_FOUND AND NOT TARGET CAF::openssl)
    find_package(OpenSSL REQUIRED)
    add_library(CAF::openssl UNKNOWN IMPORTED)
    set_target_properties(CAF::openssl PROPERTIES
      IMPORTED_LOCATION "${CAF_openssl_LIBRARY}"
      INTERFACE_LINK_LIBRARIES "CAF::io;OpenSSL::SSL;OpenSSL::Crypto")
  endif()
endif()
