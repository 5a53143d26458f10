// SPDX-License-Identifier: BSL-1.0
// The execution context of an any_io_executor. Built with
// BOOST_ASIO_USE_TS_EXECUTOR_AS_DEFAULT, any_io_executor is the Networking TS
// polymorphic executor, which names its context with context() instead of the
// execution::context query. Not an installed header.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/query.hpp>

namespace coop::detail {

inline boost::asio::execution_context& context_of(const boost::asio::any_io_executor& ex) noexcept {
#if defined(BOOST_ASIO_USE_TS_EXECUTOR_AS_DEFAULT)
  return ex.context();
#else
  return boost::asio::query(ex, boost::asio::execution::context);
#endif
}

}  // namespace coop::detail
