// SPDX-License-Identifier: BSL-1.0
// expect: coop::steps: use co_yield, not co_await
#include <coop/coop.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/steady_timer.hpp>
coop::steps f(boost::asio::steady_timer& t) { co_await t.async_wait(boost::asio::deferred); }
