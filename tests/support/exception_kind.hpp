// SPDX-License-Identifier: BSL-1.0
// What a test asserts about exceptions: the exact type, as a readable name, so a failed
// check prints what was thrown instead of "false".
#pragma once

#include <boost/asio/error.hpp>
#include <boost/core/demangle.hpp>
#include <boost/system/system_error.hpp>

#include <exception>
#include <string>
#include <typeinfo>

namespace coop_test {

/// The dynamic type of the exception `ep` holds; "null" when empty.
inline std::string kind(const std::exception_ptr& ep) {
  if (!ep) return "null";
  try {
    std::rethrow_exception(ep);
  } catch (const std::exception& e) {
    return boost::core::demangle(typeid(e).name());
  } catch (...) {
    return "non-std exception";
  }
}

/// The name kind(ep) gives an exception of type E.
template <class E> std::string kind() { return boost::core::demangle(typeid(E).name()); }

/// The exact type of what f() throws, "no exception" if nothing.
template <class F> std::string thrown_by(F&& f) {
  try {
    f();
  } catch (...) {
    return kind(std::current_exception());
  }
  return "no exception";
}

/// Whether `ep` holds system_error(asio::error::operation_aborted): how a cancelled wait
/// completes.
inline bool is_operation_aborted(const std::exception_ptr& ep) {
  if (!ep) return false;
  try {
    std::rethrow_exception(ep);
  } catch (const boost::system::system_error& e) {
    return e.code() == boost::asio::error::operation_aborted;
  } catch (...) {
    return false;
  }
}

}  // namespace coop_test
