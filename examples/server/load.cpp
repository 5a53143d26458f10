// SPDX-License-Identifier: BSL-1.0
// coop_demo_load: measures GET /ping latency and request rate of coop_demo_server while K
// jobs run, in three modes, and prints a table:
//   none   no jobs
//   coop   K jobs on the server's cooperator (POST /jobs?kind=…&mib=…)
//   naive  K jobs each run inside one request handler (POST /jobs?…&mode=naive): the
//          handler blocks its io_context thread until the job is done (starvation)
//   offload  K jobs each posted whole onto the server's asio::thread_pool (…&mode=offload),
//          the common way to keep CPU work off the I/O threads
//   wrk    K coop jobs, and the outside client `wrk -t1 -cC --latency` measures /ping
//   wrk-idle  no jobs, measured by wrk
//   shares three jobs of different digests with shares 100/200/400, and the CPU split they
//          got (a server with --fairness time --cooperators 1 gives 1:2:4)
// Each mode but the wrk ones keeps C connections busy with back-to-back GET /ping for the
// mode's duration.
#include "jobs.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/parse.hpp>
#include <boost/program_options.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using clock_type = std::chrono::steady_clock;
using asio::awaitable;
using asio::use_awaitable;

namespace {

struct config {
  std::string host = "127.0.0.1";
  unsigned short port = 0;
  std::size_t jobs = 8;
  std::size_t connections = 8;
  double duration = 5;
  std::string kind = "sha256";
  std::uint64_t coop_mib = coop_demo::max_job_mib;
  std::uint64_t naive_mib = 0;  // 0: sized so the naive mode lasts about `duration`
  std::vector<std::string> modes{"none", "coop", "naive"};
  std::string wrk = "wrk";
};

struct row {
  std::string mode;
  std::size_t jobs = 0;
  std::vector<double> latencies_ms;
  double seconds = 0;
  double job_bytes_per_second = 0;
  std::string note;
  // Filled by wrk modes instead of latencies_ms.
  bool from_wrk = false;
  std::uint64_t wrk_requests = 0;
  double wrk_rate = 0, wrk_p50 = 0, wrk_p99 = 0, wrk_max = 0;
};

// wrk prints durations as 435.00us, 2.36ms, 1.02s, 2.00m.
double wrk_ms(const std::string& token) {
  std::size_t end = 0;
  const double v = std::stod(token, &end);
  const auto unit = token.substr(end);
  if (unit == "us") return v / 1000;
  if (unit == "ms") return v;
  if (unit == "s") return v * 1000;
  if (unit == "m") return v * 60'000;
  throw std::runtime_error("unexpected wrk duration: " + token);
}

// Runs wrk (blocking: nothing else is going on in this client meanwhile) and parses
// --latency output.
void run_wrk(const config& cfg, row& r) {
  const std::string command = cfg.wrk + " -t1 -c" + std::to_string(cfg.connections) + " -d" +
                              std::to_string(static_cast<int>(std::ceil(cfg.duration))) + "s --latency http://" +
                              cfg.host + ":" + std::to_string(cfg.port) + "/ping 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) throw std::runtime_error("cannot run: " + command);
  std::string out;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, pipe)) out.append(buf, n);
  if (::pclose(pipe) != 0) throw std::runtime_error("wrk failed: " + command + "\n" + out);
  std::istringstream lines(out);
  bool seen_rate = false;
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::string first;
    words >> first;
    if (first == "Latency") {
      std::string avg, stdev, max;
      words >> avg >> stdev >> max;
      if (avg != "Distribution") r.wrk_max = wrk_ms(max);
    } else if (first == "50%") {
      std::string v;
      words >> v;
      r.wrk_p50 = wrk_ms(v);
    } else if (first == "99%") {
      std::string v;
      words >> v;
      r.wrk_p99 = wrk_ms(v);
    } else if (first == "Requests/sec:") {
      words >> r.wrk_rate;
      seen_rate = true;
    } else if (line.find(" requests in ") != std::string::npos) {
      r.wrk_requests = std::stoull(first);
    }
  }
  if (!seen_rate) throw std::runtime_error("cannot read wrk's output:\n" + out);
  r.from_wrk = true;
  r.note = command.substr(0, command.size() - 5);  // without the redirection
}

struct http_client {
  explicit http_client(asio::any_io_executor ex) : stream(ex) {}
  beast::tcp_stream stream;
  beast::flat_buffer buffer;

  awaitable<void> connect(const tcp::endpoint& ep) {
    co_await stream.async_connect(ep, use_awaitable);
    stream.socket().set_option(tcp::no_delay(true));
  }

  awaitable<http::response<http::string_body>> call(http::verb verb, std::string target) {
    http::request<http::empty_body> req{verb, target, 11};
    req.set(http::field::host, "127.0.0.1");
    co_await http::async_write(stream, req, use_awaitable);
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 * 1024 * 1024);
    co_await http::async_read(stream, buffer, parser, use_awaitable);
    co_return parser.release();
  }

  awaitable<json::value> call_json(http::verb verb, std::string target, http::status expected) {
    auto res = co_await call(verb, target);
    if (res.result() != expected)
      throw std::runtime_error(std::string(http::to_string(verb)) + " " + target + " -> " +
                               std::to_string(res.result_int()) + " " + res.body());
    co_return json::parse(res.body());
  }
};

// Completion of a dynamic set of coroutines, single-threaded: the last one cancels the timer.
struct countdown {
  explicit countdown(asio::any_io_executor ex) : timer(ex, clock_type::time_point::max()) {}
  void add() { ++remaining; }
  void done() {
    if (--remaining == 0) timer.cancel();
  }
  awaitable<void> wait() {
    boost::system::error_code ec;
    while (remaining > 0) co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
  }
  asio::steady_timer timer;
  std::size_t remaining = 0;
};

// Back-to-back GET /ping on one connection until `stop` is set.
awaitable<void> ping_loop(tcp::endpoint ep, const bool& stop, std::vector<double>& out, countdown& cd,
                          std::string& error) {
  try {
    http_client c(co_await asio::this_coro::executor);
    co_await c.connect(ep);
    while (!stop) {
      const auto t0 = clock_type::now();
      auto res = co_await c.call(http::verb::get, "/ping");
      const auto t1 = clock_type::now();
      if (res.result() != http::status::ok) throw std::runtime_error("/ping -> " + std::to_string(res.result_int()));
      out.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
  } catch (const std::exception& e) {
    error = e.what();
  }
  cd.done();
}

awaitable<void> sleep_for(double seconds) {
  asio::steady_timer t(co_await asio::this_coro::executor);
  t.expires_after(std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(seconds)));
  co_await t.async_wait(use_awaitable);
}

awaitable<std::uint64_t> job_bytes(http_client& c, const std::vector<std::uint64_t>& ids) {
  std::uint64_t total = 0;
  for (auto id : ids) {
    auto v = co_await c.call_json(http::verb::get, "/jobs/" + std::to_string(id), http::status::ok);
    total += v.at("bytes").to_number<std::uint64_t>();
  }
  co_return total;
}

// Runs the ping loops; `body` runs alongside and sets `stop` when the window is over.
template <class Body>
awaitable<void> measure(const config& cfg, tcp::endpoint ep, row& r, Body body) {
  auto ex = co_await asio::this_coro::executor;
  bool stop = false;
  countdown cd(ex);
  std::vector<std::vector<double>> per_connection(cfg.connections);
  std::vector<std::string> errors(cfg.connections);
  const auto t0 = clock_type::now();
  for (std::size_t i = 0; i < cfg.connections; ++i) {
    cd.add();
    asio::co_spawn(ex, ping_loop(ep, stop, per_connection[i], cd, errors[i]), asio::detached);
  }
  co_await body(stop);
  stop = true;
  co_await cd.wait();  // the last request of each connection is part of the window
  r.seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
  for (auto& v : per_connection) r.latencies_ms.insert(r.latencies_ms.end(), v.begin(), v.end());
  for (auto& e : errors)
    if (!e.empty()) throw std::runtime_error("ping connection failed: " + e);
}

awaitable<void> run_modes(const config& cfg, std::vector<row>& rows, json::value& info, std::string& shares_split) {
  auto ex = co_await asio::this_coro::executor;
  const tcp::endpoint ep{asio::ip::make_address(cfg.host), cfg.port};
  http_client control(ex);
  co_await control.connect(ep);
  info = co_await control.call_json(http::verb::get, "/info", http::status::ok);
  const auto threads = std::max<std::uint64_t>(1, info.at("threads").to_number<std::uint64_t>());
  double coop_rate = 0;

  for (const auto& mode : cfg.modes) {
    row r;
    r.mode = mode;
    if (mode == "none") {
      co_await measure(cfg, ep, r, [&](bool&) -> awaitable<void> { co_await sleep_for(cfg.duration); });
    } else if (mode == "coop" || mode == "wrk" || mode == "offload") {
      r.jobs = cfg.jobs;
      std::vector<std::uint64_t> ids;
      for (std::size_t i = 0; i < cfg.jobs; ++i) {
        auto v = co_await control.call_json(http::verb::post,
                                            "/jobs?kind=" + cfg.kind + "&mib=" + std::to_string(cfg.coop_mib) +
                                                (mode == "offload" ? "&mode=offload" : ""),
                                            http::status::created);
        ids.push_back(v.at("id").to_number<std::uint64_t>());
      }
      const auto b0 = co_await job_bytes(control, ids);
      const auto t0 = clock_type::now();
      if (mode != "wrk") {
        co_await measure(cfg, ep, r, [&](bool&) -> awaitable<void> { co_await sleep_for(cfg.duration); });
      } else {
        run_wrk(cfg, r);
      }
      const auto b1 = co_await job_bytes(control, ids);
      const double s = std::chrono::duration<double>(clock_type::now() - t0).count();
      r.job_bytes_per_second = static_cast<double>(b1 - b0) / s;
      for (auto id : ids) co_await control.call(http::verb::post, "/jobs/" + std::to_string(id) + "/stop");
      if (mode == "coop") coop_rate = r.job_bytes_per_second;
    } else if (mode == "shares") {
      // Three jobs whose units cost different amounts (different digests), with shares
      // 100, 200 and 400: on a server with --fairness time and one cooperator each gets
      // that part of the CPU (1:2:4), whatever its units cost.
      r.jobs = 3;
      static constexpr const char* kinds[] = {"sha256", "sha512", "sha3-256"};
      static constexpr unsigned shares[] = {100, 200, 400};
      std::vector<std::uint64_t> ids;
      for (int i = 0; i < 3; ++i) {
        auto v = co_await control.call_json(http::verb::post,
                                            "/jobs?kind=" + std::string(kinds[i]) + "&mib=" + std::to_string(cfg.coop_mib) +
                                                "&shares=" + std::to_string(shares[i]) + "&name=shares-" +
                                                std::to_string(shares[i]),
                                            http::status::created);
        ids.push_back(v.at("id").to_number<std::uint64_t>());
      }
      const auto cpu = [&]() -> awaitable<std::vector<double>> {
        std::vector<double> ms;
        for (auto id : ids) {
          auto v = co_await control.call_json(http::verb::get, "/jobs/" + std::to_string(id), http::status::ok);
          ms.push_back(v.at("cpu_ms").to_number<double>());
        }
        co_return ms;
      };
      const auto c0 = co_await cpu();
      co_await measure(cfg, ep, r, [&](bool&) -> awaitable<void> { co_await sleep_for(cfg.duration); });
      const auto c1 = co_await cpu();
      for (auto id : ids) co_await control.call(http::verb::post, "/jobs/" + std::to_string(id) + "/stop");
      double total = 0;
      for (int i = 0; i < 3; ++i) total += c1[i] - c0[i];
      char line[200];
      for (int i = 0; i < 3; ++i) {
        std::snprintf(line, sizeof line, "  %-10s %3u shares: %5.1f%% of the jobs' CPU (proportional %4.1f%%)\n", kinds[i],
                      shares[i], total > 0 ? 100 * (c1[i] - c0[i]) / total : 0.0, 100.0 * shares[i] / 700);
        shares_split += line;
      }
      r.note = info.at("fairness").as_string() == "time" && info.at("cooperators").to_number<int>() == 1
                   ? "split below"
                   : "split below; needs --fairness time --cooperators 1";
    } else if (mode == "wrk-idle") {
      run_wrk(cfg, r);
      co_await control.call(http::verb::get, "/ping");  // the control connection stays alive
    } else if (mode == "naive") {
      r.jobs = cfg.jobs;
      std::uint64_t mib = cfg.naive_mib;
      if (mib == 0) {
        // Sized so that K jobs on `threads` blocked threads take about `duration`.
        const double rate = coop_rate > 0 ? coop_rate : 500e6;
        const double bytes = rate * cfg.duration * static_cast<double>(std::min<std::uint64_t>(threads, cfg.jobs)) /
                             static_cast<double>(cfg.jobs);
        mib = std::clamp<std::uint64_t>(static_cast<std::uint64_t>(bytes / coop_demo::mebibyte), 1, coop_demo::max_job_mib);
      }
      r.note = std::to_string(mib) + " MiB each";
      co_await measure(cfg, ep, r, [&](bool&) -> awaitable<void> {
        countdown jobs_done(ex);
        std::vector<std::string> errors(cfg.jobs);
        const auto t0 = clock_type::now();
        for (std::size_t i = 0; i < cfg.jobs; ++i) {
          jobs_done.add();
          asio::co_spawn(
              ex,
              [&, i]() -> awaitable<void> {
                try {
                  http_client c(ex);
                  co_await c.connect(ep);
                  co_await c.call_json(http::verb::post,
                                       "/jobs?kind=" + cfg.kind + "&mib=" + std::to_string(mib) + "&mode=naive",
                                       http::status::ok);
                } catch (const std::exception& e) {
                  errors[i] = e.what();
                }
                jobs_done.done();
              },
              asio::detached);
        }
        co_await jobs_done.wait();
        const double s = std::chrono::duration<double>(clock_type::now() - t0).count();
        r.job_bytes_per_second = static_cast<double>(mib * coop_demo::mebibyte * cfg.jobs) / s;
        for (auto& e : errors)
          if (!e.empty()) throw std::runtime_error("naive job failed: " + e);
      });
    } else {
      throw std::runtime_error("unknown mode: " + mode);
    }
    rows.push_back(std::move(r));
  }
}

double single_core_rate(const std::string& kind) {
  coop_demo::hash_progress p(kind, coop_demo::max_job_mib);
  const auto t0 = clock_type::now();
  std::uint64_t units = 0;
  while (clock_type::now() - t0 < std::chrono::milliseconds(500)) {
    for (int i = 0; i < 16; ++i) p.hash_next_chunk();
    units += 16;
  }
  const double s = std::chrono::duration<double>(clock_type::now() - t0).count();
  return static_cast<double>(units * coop_demo::chunk_size) / s;
}

double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  return sorted[std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  namespace po = boost::program_options;
  config cfg;
  std::string modes = "none,coop,naive";
  po::options_description desc("coop_demo_load options");
  desc.add_options()
      ("help,h", "show this help")
      ("host", po::value(&cfg.host)->default_value(cfg.host), "server address")
      ("port,p", po::value(&cfg.port)->required(), "server port")
      ("jobs,k", po::value(&cfg.jobs)->default_value(cfg.jobs), "jobs running during the coop and naive modes")
      ("connections,c", po::value(&cfg.connections)->default_value(cfg.connections), "concurrent /ping connections")
      ("duration,d", po::value(&cfg.duration)->default_value(cfg.duration), "seconds per mode")
      ("kind", po::value(&cfg.kind)->default_value(cfg.kind), "job kind")
      ("modes", po::value(&modes)->default_value(modes), "comma-separated: none, coop, naive, offload, wrk, wrk-idle, shares")
      ("coop-mib", po::value(&cfg.coop_mib)->default_value(cfg.coop_mib), "size of each coop job (stopped after the window)")
      ("naive-mib", po::value(&cfg.naive_mib)->default_value(0), "size of each naive job (0: about --duration in total)")
      ("wrk", po::value(&cfg.wrk)->default_value(cfg.wrk), "the wrk program, for the modes wrk and wrk-idle");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("help")) {
      std::cout << desc << "\n";
      return 0;
    }
    po::notify(vm);
    cfg.modes.clear();
    std::stringstream ss(modes);
    for (std::string m; std::getline(ss, m, ',');)
      if (!m.empty()) cfg.modes.push_back(m);
    if (cfg.connections < 1 || cfg.duration <= 0) throw std::runtime_error("--connections >= 1 and --duration > 0");
  } catch (const std::exception& e) {
    std::cerr << "coop_demo_load: " << e.what() << "\n" << desc << "\n";
    return 2;
  }

  const double one_core = single_core_rate(cfg.kind);

  asio::io_context ioc(1);
  std::vector<row> rows;
  json::value info;
  std::exception_ptr failure;
  std::string shares_split;
  asio::co_spawn(ioc, run_modes(cfg, rows, info, shares_split), [&](std::exception_ptr e) { failure = e; });
  ioc.run();
  if (failure) {
    try {
      std::rethrow_exception(failure);
    } catch (const std::exception& e) {
      std::cerr << "coop_demo_load: " << e.what() << "\n";
      return 1;
    }
  }

  std::printf("\ncoop demo: GET /ping while %zu %s jobs run (server: %g threads, %g us slices; client: %zu connections, ~%g s per mode)\n",
              cfg.jobs, cfg.kind.c_str(), info.at("threads").to_number<double>(),
              info.at("slice_us").to_number<double>(), cfg.connections, cfg.duration);
  std::printf("single-core %s on this machine (this client, one thread): %.0f MB/s\n\n", cfg.kind.c_str(), one_core / 1e6);
  std::printf("%-8s %5s %9s %9s %9s %9s %9s %10s  %s\n", "mode", "jobs", "requests", "req/s", "p50 ms", "p99 ms",
              "max ms", "jobs MB/s", "");
  for (auto& r : rows) {
    if (r.from_wrk) {
      std::printf("%-8s %5zu %9llu %9.0f %9.3f %9.3f %9.3f %10.0f  %s\n", r.mode.c_str(), r.jobs,
                  static_cast<unsigned long long>(r.wrk_requests), r.wrk_rate, r.wrk_p50, r.wrk_p99, r.wrk_max,
                  r.job_bytes_per_second / 1e6, r.note.c_str());
      continue;
    }
    std::sort(r.latencies_ms.begin(), r.latencies_ms.end());
    const double rate = r.seconds > 0 ? static_cast<double>(r.latencies_ms.size()) / r.seconds : 0;
    std::printf("%-8s %5zu %9zu %9.0f %9.3f %9.3f %9.3f %10.0f  %s\n", r.mode.c_str(), r.jobs, r.latencies_ms.size(),
                rate, percentile(r.latencies_ms, 0.50), percentile(r.latencies_ms, 0.99),
                r.latencies_ms.empty() ? 0.0 : r.latencies_ms.back(), r.job_bytes_per_second / 1e6, r.note.c_str());
  }
  std::printf("\nnone: no jobs. coop: the jobs run on the server's cooperator. naive: each job runs inside its own\n"
              "POST handler, blocking an io_context thread (starvation). offload: each job posted whole onto the\n"
              "server's asio::thread_pool. wrk/wrk-idle: the same as coop/none, measured by wrk. jobs MB/s: bytes the\n"
              "jobs hashed per second during the measurement.\n\n");
  if (!shares_split.empty())
    std::printf("shares: three jobs with shares 100, 200, 400 (server: fairness %s, cooperators: %g)\n%s\n",
                std::string(info.at("fairness").as_string()).c_str(), info.at("cooperators").to_number<double>(),
                shares_split.c_str());
  return 0;
}
