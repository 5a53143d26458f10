// SPDX-License-Identifier: BSL-1.0
#define BOOST_TEST_MODULE server
#include <boost/test/unit_test.hpp>

// The demo HTTP server (examples/server), started in-process on an ephemeral port of
// 127.0.0.1; the tests talk to it with blocking Beast clients and raw sockets. Waits are on
// futures fed by the task API or the server's hooks, never on sleeps.

#include "server.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/parse.hpp>

#include <openssl/evp.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <thread>
#include <utility>
#include <vector>

#include <unistd.h>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using coop_demo::chunk_size;
using coop_demo::mebibyte;

namespace {

constexpr std::chrono::seconds generous{60};  // futures: a hang fails instead of blocking ctest
using namespace std::chrono_literals;

struct running_server {
  explicit running_server(coop_demo::server_options options = {}, int threads = 2)
      : ioc(threads), server(ioc, std::move(options)) {
    for (int i = 0; i < threads; ++i) pool.emplace_back([this] { ioc.run(); });
  }
  ~running_server() { join(); }
  // Graceful shutdown; returns once every io_context thread's run() has returned.
  void join() {
    server.shutdown();
    for (auto& t : pool)
      if (t.joinable()) t.join();
  }
  unsigned short port() const { return server.port(); }

  asio::io_context ioc;
  coop_demo::server server;
  std::vector<std::thread> pool;
};

using response = http::response<http::string_body>;

struct client {
  explicit client(unsigned short port) : socket(ioc) {
    socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  }

  response call(http::verb verb, std::string target, bool keep_alive = true) {
    http::request<http::empty_body> req{verb, target, 11};
    req.set(http::field::host, "127.0.0.1");
    req.keep_alive(keep_alive);
    http::write(socket, req);
    return read_response();
  }

  response read_response() {
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 * mebibyte);
    http::read(socket, buffer, parser);
    return parser.release();
  }

  json::value call_json(http::verb verb, std::string target, http::status expected) {
    auto res = call(verb, target);
    BOOST_TEST_INFO(std::string(http::to_string(verb)) + " " + target + " -> " + res.body());
    BOOST_TEST(res.result_int() == static_cast<unsigned>(expected));
    BOOST_TEST(res[http::field::content_type] == "application/json");
    return json::parse(res.body());
  }

  void send_raw(std::string_view bytes) { asio::write(socket, asio::buffer(bytes)); }

  // True when the server closed the connection (EOF or reset) with no further bytes.
  bool closed_by_server() {
    char byte;
    boost::system::error_code ec;
    if (buffer.size() > 0) return false;
    socket.read_some(asio::buffer(&byte, 1), ec);
    return ec == asio::error::eof || ec == asio::error::connection_reset;
  }

  asio::io_context ioc;
  tcp::socket socket;
  beast::flat_buffer buffer;
};

std::string expected_digest(std::uint64_t mib, const char* algorithm = "sha256") {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_get_digestbyname(algorithm), nullptr);
  std::vector<unsigned char> chunk(chunk_size);
  for (std::uint64_t i = 0; i < mib * (mebibyte / chunk_size); ++i) {
    coop_demo::fill_chunk(i, chunk);
    EVP_DigestUpdate(ctx, chunk.data(), chunk.size());
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx, md, &n);
  EVP_MD_CTX_free(ctx);
  std::string hex;
  for (unsigned i = 0; i < n; ++i) {
    static constexpr char digits[] = "0123456789abcdef";
    hex += digits[md[i] >> 4];
    hex += digits[md[i] & 0xf];
  }
  return hex;
}

std::string generated(std::uint64_t size) {
  std::string out;
  out.reserve(size);
  std::vector<unsigned char> chunk(chunk_size);
  for (std::uint64_t i = 0; out.size() < size; ++i) {
    const auto n = std::min<std::uint64_t>(chunk_size, size - out.size());
    coop_demo::fill_chunk(i, std::span(chunk).first(n));
    out.append(reinterpret_cast<const char*>(chunk.data()), n);
  }
  return out;
}

std::uint64_t id_of(const json::value& v) { return v.at("id").to_number<std::uint64_t>(); }
std::string state_of(const json::value& v) { return std::string(v.at("state").as_string()); }
std::uint64_t units_of(const json::value& v) { return v.at("units").to_number<std::uint64_t>(); }

// Waits for a cooperative job's task to finish and for the server to have recorded it;
// rethrows how the task finished.
void wait_for_job(running_server& s, std::uint64_t id) {
  auto j = s.server.find_job(id);
  BOOST_REQUIRE(j);
  auto task = j->task();
  BOOST_REQUIRE(task.has_value());
  auto done = task->when_done(asio::use_future);
  BOOST_REQUIRE(done.wait_for(generous) == std::future_status::ready);
  BOOST_REQUIRE(j->when_recorded().wait_for(generous) == std::future_status::ready);
  done.get();
}

// A job that is no cooperative task (mode naive or offload): until its end is recorded.
void wait_for_blocking_job(running_server& s, std::uint64_t id) {
  auto j = s.server.find_job(id);
  BOOST_REQUIRE(j);
  BOOST_REQUIRE(j->when_recorded().wait_for(generous) == std::future_status::ready);
}

void check_error(const json::value& v) {
  BOOST_TEST(v.is_object());
  BOOST_TEST(v.as_object().contains("error"));
  BOOST_TEST(!v.at("error").as_string().empty());
}

}  // namespace

BOOST_AUTO_TEST_CASE(fill_chunk_is_the_documented_pattern) {
  std::vector<unsigned char> a(chunk_size), b(chunk_size);
  coop_demo::fill_chunk(0, a);
  coop_demo::fill_chunk(0x0102030405060708ULL, b);
  BOOST_TEST(std::all_of(a.begin(), a.begin() + 8, [](unsigned char c) { return c == 0; }));
  const std::vector<unsigned char> stamp{8, 7, 6, 5, 4, 3, 2, 1};
  BOOST_TEST(std::equal(stamp.begin(), stamp.end(), b.begin()));
  BOOST_TEST(std::equal(a.begin() + 8, a.end(), b.begin() + 8));  // the same block after the stamp
  BOOST_TEST(std::count(a.begin() + 8, a.end(), a[8]) < 1024);    // and not a constant fill
  // The no-copy hashing path produces the digest of exactly these bytes.
  coop_demo::hash_progress p("sha256", 1);
  while (!p.hash_next_chunk()) {
  }
  BOOST_TEST(p.units_done() == 16u);
  BOOST_TEST(p.digest_hex() == expected_digest(1));
}

BOOST_AUTO_TEST_CASE(ping_info_and_unknown_paths) {
  running_server s;
  client c(s.port());
  auto pong = c.call(http::verb::get, "/ping");
  BOOST_TEST(pong.result_int() == 200u);
  BOOST_TEST(pong.body() == "pong\n");
  BOOST_TEST(pong.keep_alive());

  auto info = c.call_json(http::verb::get, "/info", http::status::ok);
  BOOST_TEST(info.at("threads").to_number<int>() == 1);  // the options' default
  BOOST_TEST(info.at("chunk_bytes").to_number<std::size_t>() == chunk_size);

  // Every error keeps the connection usable: all of this runs on one keep-alive connection.
  check_error(c.call_json(http::verb::get, "/nope", http::status::not_found));
  check_error(c.call_json(http::verb::get, "/", http::status::not_found));
  check_error(c.call_json(http::verb::get, "/ping/extra", http::status::not_found));
  check_error(c.call_json(http::verb::get, "/jobs/1/2/3", http::status::not_found));
  auto wrong = c.call(http::verb::delete_, "/ping");
  BOOST_TEST(wrong.result_int() == 405u);
  BOOST_TEST(wrong[http::field::allow] == "GET");
  auto wrong_jobs = c.call(http::verb::put, "/jobs");
  BOOST_TEST(wrong_jobs.result_int() == 405u);
  BOOST_TEST(wrong_jobs[http::field::allow] == "GET, POST");
  check_error(c.call_json(http::verb::post, "/stream?size=1", http::status::method_not_allowed));
  check_error(c.call_json(http::verb::get, "/ping%zz", http::status::bad_request));

  BOOST_TEST(c.call(http::verb::get, "/ping").body() == "pong\n");
  BOOST_TEST(c.call_json(http::verb::get, "/jobs", http::status::ok).as_array().empty());
}

BOOST_AUTO_TEST_CASE(job_creation_rejects_bad_arguments) {
  running_server s;
  client c(s.port());
  for (std::string target : {"/jobs", "/jobs?mib", "/jobs?mib=", "/jobs?mib=0", "/jobs?mib=-1", "/jobs?mib=%2D1",
                             "/jobs?mib=+5", "/jobs?mib=1048577", "/jobs?mib=18446744073709551616",
                             "/jobs?mib=99999999999999999999999999", "/jobs?mib=12abc", "/jobs?mib=1.5",
                             "/jobs?mib=0x10", "/jobs?kind=md4&mib=1", "/jobs?kind=&mib=1", "/jobs?kind&mib=1",
                             "/jobs?mib=1&mode=turbo", "/jobs?mib=1&mode", "/jobs?mib=1&colour=red",
                             "/jobs?mib=1&mib=2"}) {
    BOOST_TEST_CONTEXT(target) { check_error(c.call_json(http::verb::post, target, http::status::bad_request)); }
  }
  // None of them created a job, and the server still serves.
  BOOST_TEST(c.call_json(http::verb::get, "/jobs", http::status::ok).as_array().empty());
  BOOST_TEST(c.call(http::verb::get, "/ping").result_int() == 200u);
}

BOOST_AUTO_TEST_CASE(a_job_runs_to_done_and_finished_jobs_refuse_control) {
  running_server s;
  client c(s.port());
  auto res = c.call(http::verb::post, "/jobs?kind=sha256&mib=1");
  BOOST_TEST(res.result_int() == 201u);
  const auto id = id_of(json::parse(res.body()));
  BOOST_TEST(res[http::field::location] == "/jobs/" + std::to_string(id));
  wait_for_job(s, id);  // completes without an exception

  auto j = c.call_json(http::verb::get, "/jobs/" + std::to_string(id), http::status::ok);
  BOOST_TEST(id_of(j) == id);
  BOOST_TEST(j.at("kind").as_string() == "sha256");
  BOOST_TEST(state_of(j) == "done");
  BOOST_TEST(j.at("progress").to_number<double>() == 1.0);
  BOOST_TEST(units_of(j) == 16u);
  BOOST_TEST(j.at("bytes").to_number<std::uint64_t>() == mebibyte);
  BOOST_TEST(j.at("cpu_ms").to_number<double>() > 0.0);
  BOOST_TEST(j.at("digest").as_string() == expected_digest(1));

  auto list = c.call_json(http::verb::get, "/jobs", http::status::ok).as_array();
  BOOST_REQUIRE(list.size() == 1u);
  BOOST_TEST(list[0] == j);

  for (const char* action : {"pause", "resume", "stop"}) {
    BOOST_TEST_CONTEXT(action) {
      auto r = c.call_json(http::verb::post, "/jobs/" + std::to_string(id) + "/" + action, http::status::conflict);
      check_error(r);
      BOOST_TEST(state_of(r) == "done");
    }
  }
  BOOST_TEST(state_of(c.call_json(http::verb::get, "/jobs/" + std::to_string(id), http::status::ok)) == "done");

  // Other kinds go through the same path.
  auto other = c.call_json(http::verb::post, "/jobs?kind=sha512&mib=1", http::status::created);
  wait_for_job(s, id_of(other));
  auto o = c.call_json(http::verb::get, "/jobs/" + std::to_string(id_of(other)), http::status::ok);
  BOOST_TEST(o.at("digest").as_string() == expected_digest(1, "sha512"));
}

// The registry forgets the oldest finished jobs beyond the limit, never a running or
// paused one: a long-lived server does not grow with every job it ran.
BOOST_AUTO_TEST_CASE(old_finished_jobs_are_forgotten_running_and_paused_ones_kept) {
  coop_demo::server_options options;
  options.finished_jobs_kept = 2;
  running_server s(options);
  client c(s.port());
  // A long job, paused at once: it must survive every eviction below.
  const auto paused = id_of(c.call_json(http::verb::post, "/jobs?kind=sha256&mib=4096", http::status::created));
  BOOST_TEST(state_of(c.call_json(http::verb::post, "/jobs/" + std::to_string(paused) + "/pause", http::status::ok)) ==
             "paused");
  std::vector<std::uint64_t> finished;
  for (int i = 0; i < 4; ++i) {
    const auto id = id_of(c.call_json(http::verb::post, "/jobs?kind=sha256&mib=1", http::status::created));
    wait_for_job(s, id);
    finished.push_back(id);
  }
  // The fourth creation saw three finished jobs and forgot the oldest; the fourth job
  // finished afterwards, so the next creation forgets one more.
  const auto last = id_of(c.call_json(http::verb::post, "/jobs?kind=sha256&mib=1", http::status::created));
  wait_for_job(s, last);
  std::vector<std::uint64_t> listed;
  const json::value list = c.call_json(http::verb::get, "/jobs", http::status::ok);
  for (const auto& j : list.as_array()) listed.push_back(id_of(j));
  const std::vector<std::uint64_t> expected{paused, finished[2], finished[3], last};
  BOOST_TEST(listed == expected, boost::test_tools::per_element());
  check_error(c.call_json(http::verb::get, "/jobs/" + std::to_string(finished[0]), http::status::not_found));
  BOOST_TEST(state_of(c.call_json(http::verb::get, "/jobs/" + std::to_string(paused), http::status::ok)) == "paused");
  c.call_json(http::verb::post, "/jobs/" + std::to_string(paused) + "/stop", http::status::ok);
}

BOOST_AUTO_TEST_CASE(jobs_spread_over_several_cooperators) {
  coop_demo::server_options options;
  options.cooperators = 2;
  running_server s(options);
  client c(s.port());
  BOOST_TEST(c.call_json(http::verb::get, "/info", http::status::ok).at("cooperators").to_number<int>() == 2);
  BOOST_TEST(s.server.pool().size() == 2u);
  std::vector<std::uint64_t> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(id_of(c.call_json(http::verb::post, "/jobs?mib=1", http::status::created)));
  for (auto id : ids) {
    wait_for_job(s, id);
    auto j = c.call_json(http::verb::get, "/jobs/" + std::to_string(id), http::status::ok);
    BOOST_TEST(state_of(j) == "done");
    BOOST_TEST(j.at("digest").as_string() == expected_digest(1));
  }
  // Stopping the server stops every cooperator: a long job on each ends "stopped".
  const auto a = id_of(c.call_json(http::verb::post, "/jobs?mib=1048576", http::status::created));
  const auto b = id_of(c.call_json(http::verb::post, "/jobs?mib=1048576", http::status::created));
  s.join();
  for (auto id : {a, b}) BOOST_TEST(coop_demo::to_string(s.server.find_job(id)->state()) == "stopped");
}

BOOST_AUTO_TEST_CASE(jobs_have_names_shares_and_task_states) {
  coop_demo::server_options options;
  options.cooperator.max_active = 1;  // one cooperator: the second job waits, queued
  running_server s(options);
  client c(s.port());
  const auto info = c.call_json(http::verb::get, "/info", http::status::ok);
  BOOST_TEST(info.at("fairness").as_string() == "units");
  BOOST_TEST(info.at("max_active").to_number<int>() == 1);
  const auto a = id_of(c.call_json(http::verb::post, "/jobs?mib=1048576&shares=300&name=big", http::status::created));
  const auto b = id_of(c.call_json(http::verb::post, "/jobs?mib=1048576", http::status::created));
  auto ja = c.call_json(http::verb::get, "/jobs/" + std::to_string(a), http::status::ok);
  BOOST_TEST(ja.at("name").as_string() == "big");
  BOOST_TEST(ja.at("shares").to_number<int>() == 300);
  BOOST_TEST(ja.at("task_state").as_string() == "runnable");
  auto jb = c.call_json(http::verb::get, "/jobs/" + std::to_string(b), http::status::ok);
  BOOST_TEST(jb.at("name").as_string() == "job-" + std::to_string(b));
  BOOST_TEST(jb.at("shares").to_number<int>() == 100);
  BOOST_TEST(jb.at("task_state").as_string() == "queued");
  BOOST_TEST(units_of(jb) == 0u);

  const std::string pb = "/jobs/" + std::to_string(b);
  BOOST_TEST(c.call_json(http::verb::post, pb + "/shares?value=700", http::status::ok).at("shares").to_number<int>() == 700);
  for (const char* bad : {"/shares", "/shares?value=0", "/shares?value=10001", "/shares?value=x", "/shares?value=5&x=1"})
    BOOST_TEST_CONTEXT(bad) { check_error(c.call_json(http::verb::post, pb + bad, http::status::bad_request)); }
  BOOST_TEST(c.call_json(http::verb::get, pb, http::status::ok).at("shares").to_number<int>() == 700);

  // The running job stops: the queued one is admitted and runs.
  c.call_json(http::verb::post, "/jobs/" + std::to_string(a) + "/stop", http::status::ok);
  auto finished = c.call_json(http::verb::post, "/jobs/" + std::to_string(a) + "/shares?value=5", http::status::conflict);
  BOOST_TEST(finished.at("shares").to_number<int>() == 300);
  BOOST_TEST(finished.at("task_state").as_string() == "stopped");
  const auto deadline = std::chrono::steady_clock::now() + generous;
  while (units_of(c.call_json(http::verb::get, pb, http::status::ok)) == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  BOOST_TEST(c.call_json(http::verb::get, pb, http::status::ok).at("task_state").as_string() == "runnable");
  for (const char* bad : {"/jobs?mib=1&shares=0", "/jobs?mib=1&shares=10001", "/jobs?mib=1&shares=",
                          "/jobs?mib=1&mode=naive&shares=5", "/jobs?mib=1&name=",
                          "/jobs?mib=1&name=01234567890123456789012345678901234567890123456789012345678901234"})
    BOOST_TEST_CONTEXT(bad) { check_error(c.call_json(http::verb::post, bad, http::status::bad_request)); }
  BOOST_TEST(c.call_json(http::verb::get, "/jobs", http::status::ok).as_array().size() == 2u);
}

namespace {
// `promtool check metrics` (Debian's prometheus package) on `text`: its output, and
// whether it found the exposition valid.
std::pair<bool, std::string> promtool_check(const std::string& text) {
  char path[] = "/tmp/coop-metrics-XXXXXX";
  const int fd = ::mkstemp(path);
  BOOST_REQUIRE(fd >= 0);
  BOOST_REQUIRE(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  ::close(fd);
  std::string out;
  std::FILE* p = ::popen(("promtool check metrics < " + std::string(path) + " 2>&1").c_str(), "r");
  BOOST_REQUIRE(p);
  for (int ch; (ch = std::fgetc(p)) != EOF;) out.push_back(static_cast<char>(ch));
  const int status = ::pclose(p);
  ::unlink(path);
  return {status == 0, out};
}

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos;
}
}  // namespace

BOOST_AUTO_TEST_CASE(metrics_are_prometheus_text_and_count_what_ran) {
  BOOST_REQUIRE_MESSAGE(std::system("command -v promtool > /dev/null") == 0,
                        "promtool is missing: apt-get install prometheus (scripts/test.sh does)");
  running_server s;
  client c(s.port());
  const auto id = id_of(c.call_json(http::verb::post, "/jobs?kind=sha256&mib=1&name=sum", http::status::created));
  wait_for_job(s, id);
  for (int i = 0; i < 3; ++i) BOOST_TEST(c.call(http::verb::get, "/ping").result_int() == 200u);
  c.call_json(http::verb::get, "/nowhere", http::status::not_found);

  // The job's stats in GET /jobs/{id}: its 16 units, and time in them.
  const auto j = c.call_json(http::verb::get, "/jobs/" + std::to_string(id), http::status::ok);
  BOOST_TEST(j.at("stats").at("units").to_number<std::uint64_t>() == 16u);
  BOOST_TEST(j.at("stats").at("busy_ms").to_number<double>() > 0.0);
  BOOST_TEST(j.at("stats").at("waited_ms").to_number<double>() >= 0.0);

  // The cooperator adds a tick's units to its stats, and publishes its counts, as the
  // tick ends, which may be after the job's completion ran on the other thread: until
  // then, ask again.
  auto res = c.call(http::verb::get, "/metrics");
  const auto deadline = std::chrono::steady_clock::now() + generous;
  const auto tick_ended = [](const std::string& body) {
    return has_line("\n" + body, "coop_cooperator_units_total{cooperator=\"0\"} 16") &&
           has_line("\n" + body, "coop_cooperator_tasks{cooperator=\"0\",state=\"runnable\"} 0");
  };
  while (!tick_ended(res.body()) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
    res = c.call(http::verb::get, "/metrics");
  }
  BOOST_TEST(res.result_int() == 200u);
  BOOST_TEST(res[http::field::content_type] == "text/plain; version=0.0.4");
  const std::string text = "\n" + res.body();
  BOOST_TEST_MESSAGE(res.body());
  const std::string job = "{job=\"" + std::to_string(id) + "\",name=\"sum\"}";
  BOOST_TEST(has_line(text, "coop_job_units_total" + job + " 16"));
  BOOST_TEST(has_line(text, "coop_job_stalls_total" + job + " 0"));
  BOOST_TEST(has_line(text, "coop_job_state{job=\"" + std::to_string(id) + "\",name=\"sum\",state=\"done\"} 1"));
  BOOST_TEST(has_line(text, "coop_cooperator_units_total{cooperator=\"0\"} 16"));
  BOOST_TEST(has_line(text, "coop_cooperator_finished_tasks_total{cooperator=\"0\"} 1"));
  BOOST_TEST(has_line(text, "coop_cooperator_tasks{cooperator=\"0\",state=\"runnable\"} 0"));
  BOOST_TEST(has_line(text, "coop_demo_http_requests_total{route=\"ping\",code=\"200\"} 3"));
  BOOST_TEST(has_line(text, "coop_demo_http_requests_total{route=\"other\",code=\"404\"} 1"));
  BOOST_TEST(text.find("coop_demo_http_request_duration_seconds_bucket{le=\"+Inf\"}") != std::string::npos);
  const auto [valid, report] = promtool_check(res.body());
  BOOST_TEST(valid, "promtool check metrics: " << report);
}

BOOST_AUTO_TEST_CASE(a_stall_job_is_reported_with_its_name_and_backtrace) {
  std::promise<coop::stall_report> reported;
  std::atomic<int> reports{0};
  coop_demo::server_options options;
  options.cooperator.stall_threshold = 20ms;
  options.cooperator.on_stall = [&](const coop::stall_report& r) {
    if (reports++ == 0) reported.set_value(r);
  };
  running_server s(options);
  client c(s.port());
  BOOST_TEST(c.call_json(http::verb::get, "/info", http::status::ok).at("stall_threshold_ms").to_number<double>() == 20.0);
  for (const char* bad : {"/jobs?kind=stall", "/jobs?kind=stall&ms=0", "/jobs?kind=stall&ms=60001",
                          "/jobs?kind=stall&ms=x", "/jobs?kind=stall&mib=1", "/jobs?mib=1&ms=5",
                          "/jobs?kind=stall&ms=5&mode=naive"})
    BOOST_TEST_CONTEXT(bad) { check_error(c.call_json(http::verb::post, bad, http::status::bad_request)); }

  const auto id = id_of(c.call_json(http::verb::post, "/jobs?kind=stall&ms=150&name=spin", http::status::created));
  auto report = reported.get_future();
  BOOST_REQUIRE(report.wait_for(generous) == std::future_status::ready);
  const coop::stall_report r = report.get();
  BOOST_TEST(r.task == "spin");
  BOOST_TEST(r.running >= 20ms);
  BOOST_TEST(!r.backtrace.empty());
  wait_for_job(s, id);
  const auto j = c.call_json(http::verb::get, "/jobs/" + std::to_string(id), http::status::ok);
  BOOST_TEST(j.at("kind").as_string() == "stall");
  BOOST_TEST(state_of(j) == "done");
  BOOST_TEST(j.at("stats").at("units").to_number<std::uint64_t>() == 1u);
  BOOST_TEST(j.at("stats").at("busy_ms").to_number<double>() >= 140.0);
  const std::string text = "\n" + c.call(http::verb::get, "/metrics").body();
  BOOST_TEST(has_line(text, "coop_job_stalls_total{job=\"" + std::to_string(id) + "\",name=\"spin\"} 1"));
  BOOST_TEST(has_line(text, "coop_cooperator_stalls_total{cooperator=\"0\"} 1"));
  BOOST_TEST(text.find("\ncoop_cooperator_moved_in_tasks_total{cooperator=\"0\"} ") != std::string::npos);
  BOOST_TEST(reports.load() == 1);
}

BOOST_AUTO_TEST_CASE(time_fairness_splits_the_cpu_by_shares) {
  coop_demo::server_options options;
  options.cooperator.fairness = coop::fairness::time;
  running_server s(options, 1);
  client c(s.port());
  BOOST_TEST(c.call_json(http::verb::get, "/info", http::status::ok).at("fairness").as_string() == "time");
  const auto a = id_of(c.call_json(http::verb::post, "/jobs?mib=1048576&shares=100", http::status::created));
  const auto b = id_of(c.call_json(http::verb::post, "/jobs?kind=sha512&mib=1048576&shares=300", http::status::created));
  std::this_thread::sleep_for(300ms);
  const double ca = c.call_json(http::verb::get, "/jobs/" + std::to_string(a), http::status::ok).at("cpu_ms").to_number<double>();
  const double cb = c.call_json(http::verb::get, "/jobs/" + std::to_string(b), http::status::ok).at("cpu_ms").to_number<double>();
  BOOST_TEST_MESSAGE("cpu ms: " << ca << " (100 shares), " << cb << " (300 shares)");
  BOOST_TEST(cb > 1.5 * ca);  // 3x, with room for a loaded machine
  BOOST_TEST(cb < 6 * ca);
}

BOOST_AUTO_TEST_CASE(pause_resume_stop_map_the_task_api) {
  running_server s;
  client c(s.port());
  const auto id = id_of(c.call_json(http::verb::post, "/jobs?mib=1048576", http::status::created));
  const auto path = "/jobs/" + std::to_string(id);

  auto p = c.call_json(http::verb::post, path + "/pause", http::status::ok);
  BOOST_TEST(state_of(p) == "paused");
  // After pause() returns no unit starts; one already running may still finish.
  const auto u1 = units_of(c.call_json(http::verb::get, path, http::status::ok));
  const auto u2 = units_of(c.call_json(http::verb::get, path, http::status::ok));
  BOOST_TEST(u2 - u1 <= 1u);
  BOOST_TEST(u2 >= units_of(p));

  BOOST_TEST(state_of(c.call_json(http::verb::post, path + "/pause", http::status::ok)) == "paused");    // 2 pauses
  BOOST_TEST(state_of(c.call_json(http::verb::post, path + "/resume", http::status::ok)) == "paused");   // 1 left
  BOOST_TEST(state_of(c.call_json(http::verb::post, path + "/resume", http::status::ok)) == "running");
  auto not_paused = c.call_json(http::verb::post, path + "/resume", http::status::conflict);
  check_error(not_paused);
  BOOST_TEST(std::string(not_paused.at("error").as_string()).find("not paused") != std::string::npos);

  auto task = s.server.find_job(id)->task();
  BOOST_REQUIRE(task.has_value());
  auto finished = task->when_done(asio::use_future);
  BOOST_TEST(state_of(c.call_json(http::verb::post, path + "/stop", http::status::ok)) == "stopped");
  BOOST_REQUIRE(finished.wait_for(generous) == std::future_status::ready);
  BOOST_CHECK_THROW(finished.get(), coop::task_stopped);
  for (const char* action : {"stop", "pause", "resume"}) {
    BOOST_TEST_CONTEXT(action) {
      auto r = c.call_json(http::verb::post, path + "/" + action, http::status::conflict);
      check_error(r);
    }
  }
  auto final_state = c.call_json(http::verb::get, path, http::status::ok);
  BOOST_TEST(state_of(final_state) == "stopped");
  BOOST_TEST(!final_state.as_object().contains("digest"));

  // Ids: unknown -> 404, malformed -> 400, unknown action -> 404, wrong method -> 405.
  check_error(c.call_json(http::verb::get, "/jobs/999999", http::status::not_found));
  check_error(c.call_json(http::verb::post, "/jobs/999999/pause", http::status::not_found));
  check_error(c.call_json(http::verb::get, "/jobs/abc", http::status::bad_request));
  check_error(c.call_json(http::verb::get, "/jobs/-1", http::status::bad_request));
  check_error(c.call_json(http::verb::post, path + "/explode", http::status::not_found));
  check_error(c.call_json(http::verb::get, path + "/pause", http::status::method_not_allowed));
  check_error(c.call_json(http::verb::post, path, http::status::method_not_allowed));
  BOOST_TEST(c.call(http::verb::get, "/ping").result_int() == 200u);
}

BOOST_AUTO_TEST_CASE(a_failing_unit_fails_the_job) {
  coop_demo::server_options options;
  options.on_unit = [](std::uint64_t, std::uint64_t unit) {
    if (unit == 3) throw std::runtime_error("disk on fire");
  };
  running_server s(options);
  client c(s.port());
  const auto id = id_of(c.call_json(http::verb::post, "/jobs?mib=1", http::status::created));
  BOOST_CHECK_EXCEPTION(wait_for_job(s, id), std::runtime_error,
                        [](const std::runtime_error& e) { return std::string(e.what()) == "disk on fire"; });
  const auto path = "/jobs/" + std::to_string(id);
  auto j = c.call_json(http::verb::get, path, http::status::ok);
  BOOST_TEST(state_of(j) == "failed");
  BOOST_TEST(j.at("error").as_string() == "disk on fire");
  BOOST_TEST(units_of(j) == 3u);
  check_error(c.call_json(http::verb::post, path + "/pause", http::status::conflict));
  check_error(c.call_json(http::verb::post, path + "/stop", http::status::conflict));
  BOOST_TEST(c.call(http::verb::get, "/ping").result_int() == 200u);
}

BOOST_AUTO_TEST_CASE(naive_mode_runs_the_job_inside_the_handler) {
  running_server s;
  client c(s.port());
  auto j = c.call_json(http::verb::post, "/jobs?kind=sha256&mib=2&mode=naive", http::status::ok);
  BOOST_TEST(state_of(j) == "done");  // finished before the response was written
  BOOST_TEST(j.at("mode").as_string() == "naive");
  BOOST_TEST(units_of(j) == 32u);
  BOOST_TEST(j.at("digest").as_string() == expected_digest(2));
  const auto path = "/jobs/" + std::to_string(id_of(j));
  check_error(c.call_json(http::verb::post, path + "/pause", http::status::conflict));
  check_error(c.call_json(http::verb::post, path + "/stop", http::status::conflict));
}

BOOST_AUTO_TEST_CASE(offload_mode_runs_the_job_on_the_thread_pool) {
  running_server s;
  client c(s.port());
  auto res = c.call(http::verb::post, "/jobs?kind=sha256&mib=2&mode=offload");
  BOOST_TEST(res.result_int() == 201u);
  const auto id = id_of(json::parse(res.body()));
  BOOST_TEST(res[http::field::location] == "/jobs/" + std::to_string(id));
  wait_for_blocking_job(s, id);
  auto j = c.call_json(http::verb::get, "/jobs/" + std::to_string(id), http::status::ok);
  BOOST_TEST(state_of(j) == "done");
  BOOST_TEST(j.at("mode").as_string() == "offload");
  BOOST_TEST(units_of(j) == 32u);
  BOOST_TEST(j.at("digest").as_string() == expected_digest(2));
  BOOST_TEST(j.at("cpu_ms").to_number<double>() > 0.0);
  BOOST_TEST(j.at("task_state").is_null());

  // A long one: stopped between chunks, never paused.
  const auto big = id_of(c.call_json(http::verb::post, "/jobs?mib=1048576&mode=offload", http::status::created));
  const auto path = "/jobs/" + std::to_string(big);
  auto paused = c.call_json(http::verb::post, path + "/pause", http::status::conflict);
  BOOST_TEST(paused.at("error").as_string() == "an offloaded job cannot be paused or resumed");
  c.call_json(http::verb::post, path + "/stop", http::status::ok);
  wait_for_blocking_job(s, big);
  BOOST_TEST(state_of(c.call_json(http::verb::get, path, http::status::ok)) == "stopped");
  auto no_shares = c.call_json(http::verb::post, "/jobs?mib=1&mode=offload&shares=5", http::status::bad_request);
  BOOST_TEST(no_shares.at("error").as_string() == "an offloaded job has no shares");
  BOOST_TEST(c.call(http::verb::get, "/info").result_int() == 200u);
}

BOOST_AUTO_TEST_CASE(ping_is_served_while_jobs_run_on_one_thread) {
  running_server s({}, 1);  // the jobs and the HTTP sessions share the only thread
  client c(s.port());
  std::vector<std::uint64_t> ids;
  for (int i = 0; i < 8; ++i) ids.push_back(id_of(c.call_json(http::verb::post, "/jobs?mib=1048576", http::status::created)));
  client p(s.port());
  for (int i = 0; i < 50; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    BOOST_TEST(p.call(http::verb::get, "/ping").result_int() == 200u);
    // One tick is ~1 ms; a generous bound that only starvation (a job run to its end,
    // ~10 minutes here) can break.
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    BOOST_TEST(ms < 5000.0);
  }
  for (auto id : ids) {
    auto j = c.call_json(http::verb::post, "/jobs/" + std::to_string(id) + "/stop", http::status::ok);
    BOOST_TEST(units_of(j) > 0u);  // every job ran meanwhile
  }
}

BOOST_AUTO_TEST_CASE(stream_delivers_the_generated_body_and_keeps_the_connection) {
  std::promise<coop_demo::stream_event> finished;
  coop_demo::server_options options;
  options.on_stream_event = [&](const coop_demo::stream_event& e) {
    if (e.what == coop_demo::stream_event::kind::finished) finished.set_value(e);
  };
  running_server s(options);
  client c(s.port());
  const std::uint64_t size = 3 * mebibyte + 123;
  auto res = c.call(http::verb::get, "/stream?size=" + std::to_string(size));
  BOOST_TEST(res.result_int() == 200u);
  BOOST_TEST(res[http::field::content_type] == "application/octet-stream");
  BOOST_TEST(res.body().size() == size);
  BOOST_TEST((res.body() == generated(size)));
  auto f = finished.get_future();
  BOOST_REQUIRE(f.wait_for(generous) == std::future_status::ready);
  const auto e = f.get();
  BOOST_TEST(e.outcome == "complete");
  BOOST_TEST(e.written == size);
  BOOST_TEST(e.produced == size);
  BOOST_TEST(e.max_backlog <= options.stream_high_water + chunk_size);
  BOOST_TEST(c.call(http::verb::get, "/ping").body() == "pong\n");  // same connection

  auto empty = c.call(http::verb::get, "/stream?size=0");
  BOOST_TEST(empty.result_int() == 200u);
  BOOST_TEST(empty.body().empty());
  for (std::string target : {"/stream", "/stream?size", "/stream?size=", "/stream?size=-1", "/stream?size=1e9",
                             "/stream?size=abc", "/stream?size=1099511627777", "/stream?size=123456789012345678901234",
                             "/stream?size=10&x=1", "/stream?size=1&size=2"}) {
    BOOST_TEST_CONTEXT(target) { check_error(c.call_json(http::verb::get, target, http::status::bad_request)); }
  }
  BOOST_TEST(c.call(http::verb::get, "/ping").body() == "pong\n");
}

BOOST_AUTO_TEST_CASE(stream_pauses_for_a_slow_client_and_survives_its_disconnect) {
  std::promise<coop_demo::stream_event> paused, finished;
  std::atomic<int> paused_events{0};
  coop_demo::server_options options;
  options.on_stream_event = [&](const coop_demo::stream_event& e) {
    if (e.what == coop_demo::stream_event::kind::paused && paused_events++ == 0) paused.set_value(e);
    if (e.what == coop_demo::stream_event::kind::finished) finished.set_value(e);
  };
  running_server s(options);
  const auto bound = options.stream_high_water + chunk_size;
  {
    client c(s.port());
    c.send_raw("GET /stream?size=1099511627776 HTTP/1.1\r\nHost: x\r\n\r\n");  // 1 TiB, and do not read
    auto p = paused.get_future();
    BOOST_REQUIRE(p.wait_for(generous) == std::future_status::ready);
    const auto e = p.get();
    BOOST_TEST(e.pauses == 1u);
    BOOST_TEST(e.max_backlog <= bound);
    BOOST_TEST(e.max_backlog >= options.stream_high_water);  // it paused because of the backlog
    // Drain a few MiB: the writer resumes the producer, which pauses again later.
    std::vector<char> sink(1 << 20);
    for (int i = 0; i < 8; ++i) asio::read(c.socket, asio::buffer(sink));
    // Leaving the scope closes the socket with unread data: the kernel resets the connection.
  }
  auto f = finished.get_future();
  BOOST_REQUIRE(f.wait_for(generous) == std::future_status::ready);
  const auto e = f.get();
  BOOST_TEST(e.outcome.rfind("client gone", 0) == 0, e.outcome);
  BOOST_TEST(e.produced < e.size);
  BOOST_TEST(e.max_backlog <= bound);
  BOOST_TEST(e.pauses >= 1u);
  client after(s.port());
  BOOST_TEST(after.call(http::verb::get, "/ping").body() == "pong\n");
}

BOOST_AUTO_TEST_CASE(malformed_requests_get_an_error_and_a_clean_close) {
  running_server s;
  struct malformed {
    std::string bytes;
    unsigned status;
  };
  const std::vector<malformed> cases{
      {"GARBAGE\r\n\r\n", 400},
      {"GET /ping HTTX/1.1\r\nHost: x\r\n\r\n", 400},
      {"GET /ping HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400},
      {"GET /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400},
      {"GET /ping HTTP/1.1\r\nBad Header\r\n\r\n", 400},
      {"GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(16 * 1024, 'a') + "\r\n\r\n", 431},
      {"POST /jobs?mib=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n", 413},
      // The body really follows: the server reads and discards it after answering, so the
      // answer is not lost to a connection reset.
      {"POST /jobs?mib=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n" + std::string(1000000, 'x'), 413},
  };
  for (const auto& m : cases) {
    BOOST_TEST_CONTEXT(m.bytes.substr(0, 40)) {
      client c(s.port());
      c.send_raw(m.bytes);
      auto res = c.read_response();
      BOOST_TEST(res.result_int() == m.status);
      BOOST_TEST(!res.keep_alive());
      check_error(json::parse(res.body()));
      BOOST_TEST(c.closed_by_server());
    }
  }
  // A target that is not origin-form is a bad request, not a broken connection.
  {
    client c(s.port());
    c.send_raw("GET http://example.com/ping HTTP/1.1\r\nHost: x\r\n\r\n");
    BOOST_TEST(c.read_response().result_int() == 400u);
    BOOST_TEST(c.call(http::verb::get, "/ping").result_int() == 200u);
  }
  // Half a request, then the client leaves; and a client that connects and says nothing.
  {
    client half(s.port());
    half.send_raw("GET /pi");
    client silent(s.port());
  }
  client c(s.port());
  BOOST_TEST(c.call(http::verb::get, "/ping").body() == "pong\n");
}

BOOST_AUTO_TEST_CASE(shutdown_finishes_in_flight_work_then_run_returns) {
  std::promise<void> naive_started;
  coop_demo::server_options options;
  options.on_unit = [&](std::uint64_t job, std::uint64_t unit) {
    if (job == 2 && unit == 0) naive_started.set_value();
  };
  running_server s(options);
  client control(s.port());
  const auto coop_job = id_of(control.call_json(http::verb::post, "/jobs?mib=1048576", http::status::created));
  BOOST_REQUIRE(coop_job == 1u);
  auto coop_done = s.server.find_job(coop_job)->task()->when_done(asio::use_future);

  client in_flight(s.port());
  in_flight.send_raw("POST /jobs?mib=1048576&mode=naive HTTP/1.1\r\nHost: x\r\n\r\n");
  auto started = naive_started.get_future();
  BOOST_REQUIRE(started.wait_for(generous) == std::future_status::ready);

  s.join();  // shutdown(), then every run() returns

  // The in-flight naive request was asked to stop and still got its response.
  auto res = in_flight.read_response();
  BOOST_TEST(res.result_int() == 200u);
  BOOST_TEST(!res.keep_alive());
  BOOST_TEST(state_of(json::parse(res.body())) == "stopped");
  BOOST_TEST(in_flight.closed_by_server());
  // The idle keep-alive connection was closed.
  BOOST_TEST(control.closed_by_server());
  // The cooperative job ended with the cooperator.
  BOOST_REQUIRE(coop_done.wait_for(generous) == std::future_status::ready);
  BOOST_CHECK_THROW(coop_done.get(), coop::scheduler_stopped);
  BOOST_TEST(coop_demo::to_string(s.server.find_job(coop_job)->state()) == "stopped");
  // Nothing listens any more.
  asio::io_context ioc;
  tcp::socket late(ioc);
  boost::system::error_code ec;
  late.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), s.port()), ec);
  BOOST_TEST(ec == asio::error::connection_refused);
}
