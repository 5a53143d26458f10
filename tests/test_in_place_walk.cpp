// SPDX-License-Identifier: BSL-1.0
// The tick's walk in place (detail/in_place_walk.hpp), driven by hand over a run order of
// real task objects: where a walk stops, what it reports, and how the run ring takes its
// cursor back. Internals, tested directly: through a cooperator, which unit runs inside a
// walk depends on the adaptive clock-read interval (timing), so a slip here would show
// only sometimes there.
#define BOOST_TEST_MODULE in_place_walk
#include <boost/test/unit_test.hpp>

#include <coop/detail/callable_task.hpp>
#include "core/core_impl.hpp"  // src/: white-box (run_ring)
#include <coop/detail/in_place_walk.hpp>

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace {

using coop::detail::callable_task;
using coop::detail::in_place_walk;
using coop::detail::run_outcome;
using coop::detail::run_ring;
using coop::detail::task_base;

struct fixture;

/// A unit that logs its task's id, checks that it is published as running, and then does
/// what the test set for it.
struct unit {
  unit(fixture* f, int id) : f(f), id(id) {}
  fixture* f;
  int id;
  coop::step operator()();
};
/// The same, as another type: a walk hands over where the type changes.
struct other_unit : unit {
  using unit::unit;
};

struct fixture {
  std::vector<task_base*> tasks;  // owned; released at the end
  std::vector<int> log;
  std::atomic<task_base*> running{nullptr};
  std::atomic<std::uint32_t> interrupt{0};
  std::function<coop::step(int)> act = [](int) { return coop::step::more; };
  bool running_seen_wrong = false;

  template <class Work = unit> task_base* add() {
    tasks.push_back(new callable_task<Work>(Work(this, static_cast<int>(tasks.size()))));
    return tasks.back();
  }
  /// A walk over `slots` from `first` (the slots stand for the ring's), `units` at most.
  in_place_walk walk(std::vector<task_base*>& slots, std::size_t first, std::size_t units = 1000,
                     bool fences = true) {
    in_place_walk w{.running = &running, .interrupt = &interrupt, .fences = fences};
    task_base* const* const end = slots.data() + slots.size();
    w.next = slots.data() + first;
    w.stop = static_cast<std::size_t>(end - w.next) > units ? w.next + units : end;
    w.fetch_end = coop::detail::fetch_end(w.next, end);
    return w;
  }
  ~fixture() {
    for (task_base* t : tasks) t->release();
  }
};

coop::step unit::operator()() {
  f->log.push_back(id);
  if (f->running.load() != f->tasks[static_cast<std::size_t>(id)]) f->running_seen_wrong = true;
  return f->act(id);
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(walk, fixture)

BOOST_AUTO_TEST_CASE(runs_the_tasks_of_its_type_in_order_and_hands_over_at_another_type) {
  std::vector<task_base*> slots{add(), add(), add(), add<other_unit>(), add()};
  in_place_walk w = walk(slots, 0);
  BOOST_TEST((slots[0]->run_turns(w) == run_outcome::more));
  BOOST_TEST(log == (std::vector<int>{0, 1, 2}), boost::test_tools::per_element());
  BOOST_TEST(w.next == slots.data() + 3);  // the cursor: at the task of the other type
  BOOST_TEST(w.last == slots[2]);
  BOOST_TEST(!w.refused);
  BOOST_TEST(!running_seen_wrong);
  BOOST_TEST(running.load() == nullptr);  // nothing runs between walks

  // The other type's walk goes on from there, and hands back.
  BOOST_TEST((slots[3]->run_turns(w) == run_outcome::more));
  BOOST_TEST((slots[4]->run_turns(w) == run_outcome::more));
  BOOST_TEST(log == (std::vector<int>{0, 1, 2, 3, 4}), boost::test_tools::per_element());
  BOOST_TEST(w.next == slots.data() + 5);
  BOOST_TEST(w.last == slots[4]);
}

BOOST_AUTO_TEST_CASE(stops_where_the_clock_is_due) {
  std::vector<task_base*> slots{add(), add(), add(), add()};
  in_place_walk w = walk(slots, 1, 2);
  BOOST_TEST((slots[1]->run_turns(w) == run_outcome::more));
  BOOST_TEST(log == (std::vector<int>{1, 2}), boost::test_tools::per_element());
  BOOST_TEST(w.next == slots.data() + 3);
}

BOOST_AUTO_TEST_CASE(stops_at_a_hole) {
  std::vector<task_base*> slots{add(), add(), nullptr, add()};
  in_place_walk w = walk(slots, 0);
  BOOST_TEST((slots[0]->run_turns(w) == run_outcome::more));
  BOOST_TEST(log == (std::vector<int>{0, 1}), boost::test_tools::per_element());
  BOOST_TEST(w.next == slots.data() + 2);
}

BOOST_AUTO_TEST_CASE(a_raised_interrupt_ends_it_after_the_unit_that_raised_it) {
  std::vector<task_base*> slots{add(), add(), add(), add()};
  act = [&](int id) {
    if (id == 1) interrupt = 1;
    return coop::step::more;
  };
  in_place_walk w = walk(slots, 0);
  BOOST_TEST((slots[0]->run_turns(w) == run_outcome::more));
  BOOST_TEST(log == (std::vector<int>{0, 1}), boost::test_tools::per_element());
  BOOST_TEST(w.last == slots[1]);
}

BOOST_AUTO_TEST_CASE(a_finished_or_failed_unit_ends_it_with_its_outcome) {
  std::vector<task_base*> slots{add(), add(), add(), add(), add()};
  act = [&](int id) {
    if (id == 3) throw std::runtime_error("unit 3");
    return id == 1 ? coop::step::done : coop::step::more;
  };
  in_place_walk w = walk(slots, 0);
  BOOST_TEST((slots[0]->run_turns(w) == run_outcome::done));
  BOOST_TEST(w.last == slots[1]);
  BOOST_TEST((slots[2]->run_turns(w) == run_outcome::failed));
  BOOST_TEST(w.last == slots[3]);
  // The exception waits for the tick on the unit's thread (which hands it to retire()).
  std::exception_ptr failure = std::exchange(coop::detail::unit_failure(), nullptr);
  BOOST_REQUIRE(static_cast<bool>(failure));
  try {
    std::rethrow_exception(failure);
  } catch (const std::runtime_error& e) {
    BOOST_TEST(std::string(e.what()) == "unit 3");
  }
  BOOST_TEST(log == (std::vector<int>{0, 1, 2, 3}), boost::test_tools::per_element());
  BOOST_TEST(running.load() == nullptr);
}

BOOST_AUTO_TEST_CASE(a_refused_claim_ends_it_before_the_unit) {
  // A pause from another thread changes the control word without the lock: the walk
  // reads it when it claims the task, and that task's unit does not run.
  std::vector<task_base*> slots{add(), add(), add(), add()};
  slots[2]->control_.store(coop::detail::control::one_pause);
  in_place_walk w = walk(slots, 0);
  BOOST_TEST((slots[0]->run_turns(w) == run_outcome::more));
  BOOST_TEST(log == (std::vector<int>{0, 1}), boost::test_tools::per_element());
  BOOST_TEST(w.refused);
  BOOST_TEST(w.last == slots[2]);
  BOOST_TEST(w.next == slots.data() + 3);  // past it: the tick settles it (parks it)
  BOOST_TEST(running.load() == nullptr);
}

BOOST_AUTO_TEST_CASE(without_asymmetric_fences_it_walks_the_same) {
  // Where the kernel has no membarrier, claims use sequentially consistent operations.
  std::vector<task_base*> slots{add(), add(), add(), add<other_unit>()};
  slots[2]->control_.store(coop::detail::control::one_pause);
  in_place_walk w = walk(slots, 0, 1000, false);
  BOOST_TEST((slots[0]->run_turns(w) == run_outcome::more));
  BOOST_TEST(log == (std::vector<int>{0, 1}), boost::test_tools::per_element());
  BOOST_TEST(w.refused);
  BOOST_TEST(w.last == slots[2]);
  BOOST_TEST(!running_seen_wrong);
  BOOST_TEST(running.load() == nullptr);
  slots[2]->control_.store(0);
  w = walk(slots, 2, 1000, false);
  BOOST_TEST((slots[2]->run_turns(w) == run_outcome::more));
  BOOST_TEST(log == (std::vector<int>{0, 1, 2}), boost::test_tools::per_element());
  BOOST_TEST(w.next == slots.data() + 3);
}

BOOST_AUTO_TEST_SUITE_END()

// A run ring of tasks 0-3, in that order.
struct ring_fixture : fixture {
  run_ring ring;
  ring_fixture() {
    ring.reserve(8);
    for (int i = 0; i < 4; ++i) ring.push_back(*add());
  }
  /// The ids of the next `count` tasks next_in_round() gives.
  std::vector<int> take(std::size_t count) {
    std::vector<int> ids;
    for (std::size_t i = 0; i < count; ++i) {
      task_base* t = ring.next_in_round();
      if (!t) break;
      for (std::size_t k = 0; k < tasks.size(); ++k)
        if (tasks[k] == t) ids.push_back(static_cast<int>(k));
    }
    return ids;
  }
};

BOOST_FIXTURE_TEST_SUITE(ring, ring_fixture)

BOOST_AUTO_TEST_CASE(takes_the_cursor_back_before_its_slots_move) {
  // A unit may add a task, and the ring may grow into a new block meanwhile: the walk's
  // cursor points into the old one.
  BOOST_TEST(take(1) == (std::vector<int>{0}), boost::test_tools::per_element());
  in_place_walk w;
  BOOST_TEST_REQUIRE(ring.start_walk(w, 100));
  BOOST_TEST((*w.next == tasks[1]));
  w.next += 2;  // tasks 1 and 2 took their turns
  ring.reserve(10000);
  BOOST_TEST(w.passed == 2u);  // counted before the slots moved
  ring.push_back(*add());  // task 4, in this round
  ring.end_walk();
  BOOST_TEST(take(7) == (std::vector<int>{3, 4, 0, 1, 2, 3, 4}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_growth_that_fails_leaves_the_cursor_with_the_walk) {
  // A unit whose cooperate() runs out of memory may catch that and go on: nothing changed,
  // so the walk goes on too, and its cursor must still be the one that counts.
  (void)take(1);
  in_place_walk w;
  BOOST_TEST_REQUIRE(ring.start_walk(w, 100));
  w.next += 1;  // task 1 took its turn
  BOOST_CHECK_THROW(ring.reserve(std::numeric_limits<std::size_t>::max() / 4), std::exception);
  w.next += 1;  // and task 2
  ring.end_walk();
  BOOST_TEST(w.passed == 2u);
  BOOST_TEST(take(5) == (std::vector<int>{3, 0, 1, 2, 3}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(takes_the_cursor_back_when_a_unit_changes_it) {
  (void)take(1);
  in_place_walk w;
  BOOST_TEST_REQUIRE(ring.start_walk(w, 100));
  w.next += 3;  // tasks 1, 2 and 3 took their turns: the round is at its end
  ring.push_back(*add(), false);  // a task that must not join this round: the next one starts
  BOOST_TEST(w.passed == 3u);
  ring.end_walk();                // the cursor was taken back already: nothing more to do
  BOOST_TEST(w.passed == 3u);
  BOOST_TEST(take(6) == (std::vector<int>{0, 1, 2, 3, 4, 0}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(starts_no_walk_with_a_hole_behind_the_cursor) {
  // The walk moves no task; closing a hole moves every task after it.
  ring.unlink(*tasks[0]);
  BOOST_TEST(take(1) == (std::vector<int>{1}), boost::test_tools::per_element());
  in_place_walk w;
  BOOST_TEST(!ring.start_walk(w, 100));
  BOOST_TEST(take(4) == (std::vector<int>{2, 3, 1, 2}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_walk_stops_where_the_clock_is_due_or_the_round_ends) {
  (void)take(1);
  in_place_walk w;
  BOOST_TEST_REQUIRE(ring.start_walk(w, 2));
  BOOST_TEST(w.stop - w.next == 2);
  ring.end_walk();
  BOOST_TEST_REQUIRE(ring.start_walk(w, 100));
  BOOST_TEST(w.stop - w.next == 3);
  ring.end_walk();
}

BOOST_AUTO_TEST_SUITE_END()
