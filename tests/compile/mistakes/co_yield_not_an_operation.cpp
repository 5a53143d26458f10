// SPDX-License-Identifier: BSL-1.0
// expect: coop::steps: co_yield takes coop::next or an Asio operation
#include <coop/coop.hpp>
coop::steps f() { co_yield 42; }
