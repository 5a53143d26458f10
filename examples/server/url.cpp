// SPDX-License-Identifier: BSL-1.0
// Boost.URL 1.81 ships no compiled library in Debian: compile it once, here.
#include <boost/url/src.hpp>
