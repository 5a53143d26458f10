// SPDX-License-Identifier: BSL-1.0
// Model-based randomized testing: coop and the reference model (tests/model/coop_model.hpp,
// written from the documented contract and Twisted's behaviour) run the same seeded random operation sequences —
// cooperate/coiterate, pause, resume, stop a task (throwing and error_code forms),
// stop/start the cooperator, k ticks of chosen lengths, units that return done, throw,
// or call into the cooperator, when_done, cancel a wait — and every observable is compared
// after every operation (tests/model/model_harness.hpp).
//
// COOP_MODEL_SEQUENCES=N runs N sequences (default 10,000), COOP_MODEL_SEED=S starts at
// seed S (default 1). A mismatch prints the seed and a shrunk sequence. Prints exactly one
// line "model-check: N sequences, M mismatches" to stdout.
#define BOOST_TEST_MODULE model_check
#include <boost/test/unit_test.hpp>

#include "model/model_harness.hpp"

#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::uint64_t env_or(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  return std::strtoull(v, nullptr, 10);
}

struct run_summary {
  std::uint64_t sequences = 0;
  std::uint64_t mismatches = 0;
  long units = 0;
  std::string first_report;
  std::map<std::string, long> coverage;
};

run_summary check_many(std::uint64_t first_seed, std::uint64_t count, coop_model::model::mutations m,
                       std::uint64_t reports) {
  run_summary s;
  for (std::uint64_t seed = first_seed; seed < first_seed + count; ++seed) {
    coop_model::sequence seq = coop_model::generate(seed);
    coop_model::check_result r = coop_model::check(seq, m);
    ++s.sequences;
    s.units += r.units;
    for (auto& [what, n] : r.coverage) s.coverage[what] += n;
    if (r.ok) continue;
    if (++s.mismatches > reports) continue;
    coop_model::sequence small = coop_model::shrink(seq, m);
    coop_model::check_result again = coop_model::check(small, m);
    std::string report = "seed " + std::to_string(seed) + " (" + std::to_string(seq.ops.size()) +
                         " ops) mismatches; shrunk to " + std::to_string(small.ops.size()) + " ops:\n" +
                         coop_model::to_string(small) + again.message;
    // A failure that depends on what ran before in the process does not shrink: show the
    // original difference too.
    if (again.ok) report += "(the shrunk sequence passes on its own; the original run said:)\n" + r.message;
    if (s.first_report.empty()) s.first_report = report;
    if (reports > 1) std::cerr << report << "\n";
  }
  return s;
}

}  // namespace

BOOST_AUTO_TEST_CASE(coop_agrees_with_the_model) {
  const std::uint64_t count = env_or("COOP_MODEL_SEQUENCES", 10000);
  const std::uint64_t first = env_or("COOP_MODEL_SEED", 1);
  run_summary s = check_many(first, count, {}, 5);
  std::cout << "model-check: " << s.sequences << " sequences, " << s.mismatches << " mismatches" << std::endl;
  BOOST_TEST_MESSAGE("seeds " << first << ".." << first + count - 1 << ", " << s.units << " units run");
  BOOST_TEST(s.mismatches == 0u, "first mismatch:\n" << s.first_report);
  // The sequences must exercise the scheduler, not just create and stop tasks.
  // (The shake-out build runs one unit per tick.)
  BOOST_TEST(s.units > static_cast<long>(count) * (coop_test::shake_out ? 1 : 5));
  // ... and reach every case the model knows (counted by the model; 10,000 sequences hit
  // each of them hundreds of times).
  const char* const cases[] = {
      "cooperate on a stopped cooperator", "pause a finished task", "pause a paused task",
      "resume an unpaused task", "resume a task that finished while paused", "stop a finished task",
      "stop a paused task", "when_done on a finished task", "cancel a completed wait",
      "cancel coiterate: the task stops", "cancel coiterate: total is ignored", "cancel a pending wait",
      "tick ended by the predicate", "tick ended with nothing runnable",
      "join mid-round (runs before the round restarts)", "leave before the cursor",
      "a second way of finishing is ignored", "context death finishes a paused task",
      "context death finishes an unpaused task", "context death drops a pending wait",
      "when_done after the context died", "a result wait gets the work: null",
      "a result wait gets the work: unit_error", "a result wait gets the work: task_stopped",
      "a result wait gets the work: scheduler_stopped", "a cancelled result wait gets a default-constructed work",
      "a steps_of wait: null", "a steps_of wait: unit_error", "a steps_of wait: task_stopped",
      "a steps_of wait: scheduler_stopped", "a steps_of wait: aborted",
      "set_shares on a finished task does nothing", "set_shares to the default",
      "set_shares to other than the default", "a turn cut short goes on first",
      "a turn with too little credit runs no unit", "a turn of several units",
      "a task waits for admission (max_active)", "pause a task waiting for admission",
      "stop a task waiting for admission", "a queued task is admitted", "a queued task is admitted paused",
      "a unit in an order coop chose (a pool of two)", "a task moved to the other member"};
  std::ostringstream all;
  for (auto& [what, n] : s.coverage) all << "  " << what << ": " << n << "\n";
  BOOST_TEST_MESSAGE("cases reached:\n" << all.str());
  if (count >= 10000) {
    for (const char* c : cases) BOOST_TEST(s.coverage[c] > 0, "never reached: " << c);
    for (int a = 0; a < static_cast<int>(coop_model::action::count_); ++a) {
      std::string c = std::string("unit: ") + coop_model::action_name(static_cast<coop_model::action>(a));
      BOOST_TEST(s.coverage[c] > 0, "never reached: " << c);
    }
  }
}

// The checker is only as good as what it can see: a model with one small deliberate
// mistake must be caught, quickly, with a short reproduction.
BOOST_AUTO_TEST_CASE(the_checker_catches_a_wrong_model) {
  struct mutation {
    const char* name;
    coop_model::model::mutations m;
  };
  const mutation mutations[] = {
      {"a removal before the cursor skips a task (Twisted's list.remove under iteration)", {.skip_after_removal = true}},
      {"a resumed task joins at the front", {.resume_at_front = true}},
      {"pause is a flag, not a counter", {.no_pause_count = true}},
      {"shares do not weigh turns", {.shares_ignored = true}},
      {"max_active admits the newest queued task", {.admit_newest = true}},
  };
  for (const mutation& mu : mutations) {
    run_summary s = check_many(1, 300, mu.m, 1);
    BOOST_TEST(s.mismatches > 0u, mu.name << ": not caught in 300 sequences");
    if (s.mismatches == 0) continue;
    // The first report's shrunk sequence is short.
    auto at = s.first_report.find("shrunk to ");
    BOOST_TEST_REQUIRE(at != std::string::npos);
    int ops = std::stoi(s.first_report.substr(at + 10));
    // (One unit per tick in the shake-out build: a reproduction needs a few more ticks.)
    BOOST_TEST(ops <= (coop_test::shake_out ? 12 : 8), mu.name << ": shrunk only to\n" << s.first_report);
    BOOST_TEST_MESSAGE(mu.name << ": " << s.mismatches << "/300 caught, e.g.\n" << s.first_report);
  }
}

// The shrinker keeps a failing sequence failing, and the generator is reproducible.
BOOST_AUTO_TEST_CASE(sequences_are_reproducible) {
  coop_model::sequence a = coop_model::generate(42), b = coop_model::generate(42), c = coop_model::generate(43);
  BOOST_TEST(coop_model::to_string(a) == coop_model::to_string(b));
  BOOST_TEST(coop_model::to_string(a) != coop_model::to_string(c));
  // The fuzzer's seed corpus is generated sequences, encoded: each decodes to itself.
  for (std::uint64_t seed = 1; seed <= 500; ++seed) {
    const coop_model::sequence g = coop_model::generate(seed);
    const std::vector<std::uint8_t> bytes = coop_model::encode(g);
    BOOST_TEST(coop_model::to_string(coop_model::decode(bytes.data(), bytes.size())) == coop_model::to_string(g),
               "seed " << seed);
  }
}
