// Boost.URL 1.81 ships no compiled library in Debian: compile it once, here.
#include <boost/url/src.hpp>
