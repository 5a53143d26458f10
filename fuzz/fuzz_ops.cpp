// SPDX-License-Identifier: BSL-1.0
// libFuzzer target over operation sequences: the input bytes decode to a sequence of the
// model checker's operations (tests/model/model_harness.hpp: cooperate/coiterate, pause,
// resume, stop, cooperator stop/start, ticks of chosen lengths, units that finish, throw or
// call into the cooperator, when_done, cancellation, settle), run on coop and on the
// reference model; any disagreement, crash or sanitizer report is a finding. On a
// mismatch the target prints the sequence, a shrunk version and the difference, then
// aborts so that libFuzzer keeps the input.
//
// Built by fuzz/build.sh, run by fuzz/run.sh. COOP_FUZZ_WRITE_SEEDS=<dir> makes the
// binary write a seed corpus (generated sequences) into <dir> and exit.
#include "model/model_harness.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* dir = std::getenv("COOP_FUZZ_WRITE_SEEDS")) {
    for (std::uint64_t seed = 1; seed <= 64; ++seed) {
      auto bytes = coop_model::encode(coop_model::generate(seed));
      std::ofstream out(std::string(dir) + "/seed-" + std::to_string(seed), std::ios::binary);
      out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    }
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  coop_model::sequence seq = coop_model::decode(data, size);
  coop_model::check_result r = coop_model::check(seq);
  if (r.ok) return 0;
  coop_model::sequence small = coop_model::shrink(seq);
  coop_model::check_result again = coop_model::check(small);
  std::fprintf(stderr, "coop disagrees with the model.\nsequence (%zu ops):\n%s%s\nshrunk to %zu ops:\n%s%s\n",
               seq.ops.size(), coop_model::to_string(seq).c_str(), r.message.c_str(), small.ops.size(),
               coop_model::to_string(small).c_str(), again.message.c_str());
  std::abort();
}
