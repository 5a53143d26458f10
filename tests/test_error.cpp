// SPDX-License-Identifier: BSL-1.0
// coop's errors: the exception hierarchy (Twisted's SchedulerError family) and the
// Asio-style error code enum with its category.
#define BOOST_TEST_MODULE error
#include <boost/test/unit_test.hpp>

#include <coop/error.hpp>   // first coop header: it must compile on its own

#include <boost/system/error_code.hpp>

#include <array>
#include <set>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <typeinfo>

namespace {

// Public, unambiguous inheritance: a pointer converts implicitly.
template <class Derived, class Base>
constexpr bool is_a = std::is_base_of_v<Base, Derived> && std::is_convertible_v<Derived*, Base*>;

template <class E>
std::string what_of() {
  const E e{};
  return e.what();
}

// Throws a default-constructed E and catches it through Base; returns the dynamic type seen.
template <class E, class Base>
bool caught_as() {
  try {
    throw E{};
  } catch (const Base& b) {
    return typeid(b) == typeid(E);
  } catch (...) {
  }
  return false;
}

constexpr std::array all_errors{coop::error::scheduler_stopped, coop::error::task_done,
                                coop::error::task_stopped, coop::error::task_failed,
                                coop::error::not_paused};

}  // namespace

BOOST_AUTO_TEST_SUITE(exceptions)

BOOST_AUTO_TEST_CASE(hierarchy_mirrors_twisted) {
  static_assert(is_a<coop::scheduler_error, std::runtime_error>);
  static_assert(is_a<coop::scheduler_stopped, coop::scheduler_error>);
  static_assert(is_a<coop::scheduler_stopped, std::runtime_error>);
  static_assert(is_a<coop::task_finished, coop::scheduler_error>);
  static_assert(is_a<coop::task_done, coop::task_finished>);
  static_assert(is_a<coop::task_stopped, coop::task_finished>);
  static_assert(is_a<coop::task_failed, coop::task_finished>);
  static_assert(is_a<coop::task_done, coop::scheduler_error>);
  static_assert(is_a<coop::task_stopped, coop::scheduler_error>);
  static_assert(is_a<coop::task_failed, coop::scheduler_error>);
  static_assert(is_a<coop::not_paused, coop::scheduler_error>);
  static_assert(is_a<coop::not_paused, std::runtime_error>);

  // Siblings are not confused with one another.
  static_assert(!std::is_base_of_v<coop::task_finished, coop::scheduler_stopped>);
  static_assert(!std::is_base_of_v<coop::task_finished, coop::not_paused>);
  static_assert(!std::is_base_of_v<coop::scheduler_stopped, coop::not_paused>);
  static_assert(!std::is_base_of_v<coop::task_done, coop::task_stopped>);
  static_assert(!std::is_base_of_v<coop::task_stopped, coop::task_failed>);
  static_assert(!std::is_base_of_v<coop::task_failed, coop::task_done>);

  // And the same at run time, through a catch of the base.
  BOOST_TEST((caught_as<coop::scheduler_stopped, coop::scheduler_error>()));
  BOOST_TEST((caught_as<coop::task_done, coop::task_finished>()));
  BOOST_TEST((caught_as<coop::task_stopped, coop::task_finished>()));
  BOOST_TEST((caught_as<coop::task_failed, coop::task_finished>()));
  BOOST_TEST((caught_as<coop::not_paused, coop::scheduler_error>()));
  BOOST_TEST((caught_as<coop::task_failed, std::runtime_error>()));
  BOOST_TEST(!(caught_as<coop::scheduler_stopped, coop::task_finished>()));
  BOOST_TEST(!(caught_as<coop::not_paused, coop::task_finished>()));
}

BOOST_AUTO_TEST_CASE(default_constructible_with_distinct_what) {
  static_assert(std::is_default_constructible_v<coop::scheduler_error>);
  static_assert(std::is_default_constructible_v<coop::scheduler_stopped>);
  static_assert(std::is_default_constructible_v<coop::task_finished>);
  static_assert(std::is_default_constructible_v<coop::task_done>);
  static_assert(std::is_default_constructible_v<coop::task_stopped>);
  static_assert(std::is_default_constructible_v<coop::task_failed>);
  static_assert(std::is_default_constructible_v<coop::not_paused>);

  const std::array<std::string, 7> whats{
      what_of<coop::scheduler_error>(), what_of<coop::scheduler_stopped>(),
      what_of<coop::task_finished>(),   what_of<coop::task_done>(),
      what_of<coop::task_stopped>(),    what_of<coop::task_failed>(),
      what_of<coop::not_paused>()};
  for (const auto& w : whats) {
    BOOST_TEST_MESSAGE("what(): " << w);
    BOOST_TEST(!w.empty());
  }
  const std::set<std::string> distinct(whats.begin(), whats.end());
  BOOST_TEST(distinct.size() == whats.size());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(error_codes)

BOOST_AUTO_TEST_CASE(enum_values_start_at_one) {
  static_assert(std::is_enum_v<coop::error>);
  BOOST_TEST(static_cast<int>(coop::error::scheduler_stopped) == 1);
  BOOST_TEST(static_cast<int>(coop::error::task_done) == 2);
  BOOST_TEST(static_cast<int>(coop::error::task_stopped) == 3);
  BOOST_TEST(static_cast<int>(coop::error::task_failed) == 4);
  BOOST_TEST(static_cast<int>(coop::error::not_paused) == 5);
}

BOOST_AUTO_TEST_CASE(is_error_code_enum) {
  static_assert(boost::system::is_error_code_enum<coop::error>::value);
  BOOST_TEST(boost::system::is_error_code_enum<coop::error>::value);
}

BOOST_AUTO_TEST_CASE(make_error_code_category_and_messages) {
  std::set<std::string> messages;
  for (const coop::error e : all_errors) {
    const boost::system::error_code ec = coop::make_error_code(e);
    BOOST_TEST(ec.failed());
    BOOST_TEST(static_cast<bool>(ec));
    BOOST_TEST(ec.value() == static_cast<int>(e));
    BOOST_TEST(std::string(ec.category().name()) == "coop");
    BOOST_TEST((ec == e));   // compares through the enum's implicit conversion
    BOOST_TEST(!ec.message().empty());
    BOOST_TEST_MESSAGE("coop::error " << ec.value() << ": " << ec.message());
    messages.insert(ec.message());
    // Found by ADL too, as Asio's own enums are.
    BOOST_TEST(make_error_code(e) == ec);
  }
  BOOST_TEST(messages.size() == all_errors.size());

  // One category for all values.
  BOOST_TEST((coop::make_error_code(coop::error::task_done).category() ==
              coop::make_error_code(coop::error::not_paused).category()));
  // Not the generic or system category.
  BOOST_TEST((coop::make_error_code(coop::error::task_done).category() !=
              boost::system::generic_category()));
  BOOST_TEST((coop::make_error_code(coop::error::task_done).category() !=
              boost::system::system_category()));
  // Distinct values compare unequal.
  BOOST_TEST((coop::make_error_code(coop::error::task_done) !=
              coop::make_error_code(coop::error::task_stopped)));
}

BOOST_AUTO_TEST_CASE(implicit_conversion_to_error_code) {
  boost::system::error_code ec = coop::error::not_paused;
  BOOST_TEST(ec.failed());
  BOOST_TEST((ec == coop::error::not_paused));
  BOOST_TEST((ec != coop::error::task_done));
  BOOST_TEST(ec.value() == 5);
  BOOST_TEST(std::string(ec.category().name()) == "coop");

  ec = coop::error::scheduler_stopped;   // assignable as well
  BOOST_TEST((ec == coop::error::scheduler_stopped));

  // An error_code carrying it can be thrown as a system_error with the same code.
  try {
    throw boost::system::system_error(ec);
  } catch (const boost::system::system_error& e) {
    BOOST_TEST((e.code() == coop::error::scheduler_stopped));
  }
}

BOOST_AUTO_TEST_SUITE_END()
