// SPDX-License-Identifier: BSL-1.0
// coop_demo_server: the demo HTTP server. See the README, "The demo".
#include "server.hpp"

#include <boost/asio/signal_set.hpp>
#include <boost/program_options.hpp>

#include <csignal>
#include <iostream>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  namespace po = boost::program_options;
  namespace asio = boost::asio;

  unsigned short port = 8080;
  std::size_t threads = 2;
  // One pool member per thread with short slices: the jobs can use every core, and both
  // threads return to I/O every 250 us (measured on 2 cores with wrk -c8 and 8 jobs:
  // 1 cooperator at 1 ms hashed ~1.1 GB/s, 2 at 250 us ~1.8-1.9 GB/s, /ping p99 the same).
  std::size_t cooperators = 0;
  double slice_us = 250;
  std::string address = "127.0.0.1";
  std::string fairness = "units";
  std::size_t max_active = 0;
  unsigned stall_ms = 50;
  bool yield_cpu = true;
  po::options_description desc("coop_demo_server options");
  desc.add_options()
      ("help,h", "show this help")
      ("port,p", po::value(&port)->default_value(port), "TCP port on 127.0.0.1 (0: ephemeral, printed)")
      ("threads,t", po::value(&threads)->default_value(threads), "threads running the io_context")
      ("cooperators", po::value(&cooperators)->default_value(cooperators), "members of the cooperator pool the jobs run on (each uses at most one thread at a time; 0: one per thread)")
      ("slice-us", po::value(&slice_us)->default_value(slice_us), "cooperator time slice per tick, microseconds")
      ("address", po::value(&address)->default_value(address), "address to bind")
      ("fairness", po::value(&fairness)->default_value(fairness), "what jobs' shares weigh: units (Twisted's round-robin) or time")
      ("max-active", po::value(&max_active)->default_value(max_active), "jobs admitted at once in the pool; later ones wait queued (0: no limit)")
      ("stall-ms", po::value(&stall_ms)->default_value(stall_ms), "report units that run longer than this, with a backtrace, to stderr and /metrics (0: off)")
      ("yield-cpu", po::value(&yield_cpu)->default_value(yield_cpu), "yield the CPU to the OS after each full tick (cooperator_options::yield_cpu)");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "coop_demo_server: " << e.what() << "\n" << desc << "\n";
    return 2;
  }
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return 0;
  }
  if (threads < 1 || slice_us <= 0 || (fairness != "units" && fairness != "time")) {
    std::cerr << "coop_demo_server: --threads must be >= 1, --slice-us > 0, --fairness units or time\n";
    return 2;
  }
  if (cooperators == 0) cooperators = threads;

  asio::io_context ioc(static_cast<int>(threads));
  coop_demo::server_options options;
  options.address = address;
  options.port = port;
  options.threads = threads;
  options.cooperators = cooperators;
  options.cooperator.slice = std::chrono::nanoseconds(static_cast<long long>(slice_us * 1000));
  options.cooperator.fairness = fairness == "time" ? coop::fairness::time : coop::fairness::units;
  options.cooperator.max_active = max_active;
  options.cooperator.stall_threshold = std::chrono::milliseconds(stall_ms);
  options.cooperator.yield_cpu = yield_cpu;
  std::optional<coop_demo::server> server;
  try {
    server.emplace(ioc, options);
  } catch (const std::exception& e) {
    std::cerr << "coop_demo_server: cannot listen on " << address << ":" << port << ": " << e.what() << "\n";
    return 1;
  }

  // First signal: graceful shutdown; run() returns once in-flight work is done. The
  // signals then get their default action back, so a second one ends the process at once.
  asio::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code ec, int signal) {
    if (ec) return;
    std::cout << "coop_demo_server: signal " << signal << ", shutting down" << std::endl;
    server->shutdown();
    boost::system::error_code ignored;
    signals.clear(ignored);
  });

  std::cout << "coop_demo_server: listening on http://" << address << ":" << server->port()
            << "/ (threads " << threads << ", cooperators " << cooperators << ", slice " << slice_us << " us, fairness "
            << fairness << ", max-active " << max_active << ")"
            << std::endl;
  std::cout << "port " << server->port() << std::endl;

  std::vector<std::thread> pool;
  for (std::size_t i = 1; i < threads; ++i) pool.emplace_back([&] { ioc.run(); });
  ioc.run();
  for (auto& t : pool) t.join();
  std::cout << "coop_demo_server: stopped" << std::endl;
  return 0;
}
