// SPDX-License-Identifier: BSL-1.0
// coop's version. The one place it is written: CMakeLists.txt reads it from here for the
// project, the CMake package, the pkg-config file, the .deb and the shared library's
// SONAME.
#pragma once

#define COOP_VERSION_MAJOR 0
#define COOP_VERSION_MINOR 2
#define COOP_VERSION_PATCH 0
/// major * 10000 + minor * 100 + patch, for comparisons in #if.
#define COOP_VERSION (COOP_VERSION_MAJOR * 10000 + COOP_VERSION_MINOR * 100 + COOP_VERSION_PATCH)
