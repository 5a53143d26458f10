// SPDX-License-Identifier: BSL-1.0
#include "server.hpp"

#include "metrics.hpp"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>

#include <algorithm>
#include <charconv>
#include <deque>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

namespace coop_demo {

namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr std::uint64_t max_stream_size = std::uint64_t{1} << 40;  // 1 TiB
constexpr std::size_t header_limit = 8 * 1024;
constexpr std::size_t body_limit = 64 * 1024;

using request = http::request<http::string_body>;
using response = http::response<http::string_body>;

class session;

}  // namespace

struct server::state : std::enable_shared_from_this<server::state> {
  state(asio::io_context& ioc_, server_options options_)
      : ioc(ioc_), options(std::move(options_)), jobs(options.finished_jobs_kept), acceptor(asio::make_strand(ioc_)) {
    // Stall reports go to the server's log and /metrics (and to the caller's on_stall, if
    // any). The pool's members may outlive this state: the log is shared with them.
    coop::cooperator_options cooperator = options.cooperator;
    cooperator.on_stall = [log = stalls, theirs = options.cooperator.on_stall](const coop::stall_report& r) {
      log->record(r);
      if (theirs) theirs(r);
    };
    // Jobs and /stream producers join the member with the fewest unfinished tasks; each
    // member runs its ticks on its own strand, so the pool uses up to that many threads.
    pool = std::make_unique<coop::cooperator_pool>(ioc_.get_executor(), std::max<std::size_t>(1, options.cooperators),
                                                   std::move(cooperator));
  }

  ~state() {
    // A blocking loop on the thread pool ends at its next chunk; the pool's destructor
    // joins it.
    for (const auto& j : jobs.all())
      if (j->naive) j->request_stop();
  }

  void accept();
  void register_session(session* s, std::weak_ptr<session> w);
  void unregister_session(session* s);
  void shutdown();

  asio::io_context& ioc;
  const server_options options;
  std::unique_ptr<coop::cooperator_pool> pool;
  job_registry jobs;
  asio::thread_pool offload{static_cast<std::size_t>(std::max<std::size_t>(1, options.offload_threads))};
  http_metrics http;
  std::shared_ptr<stall_log> stalls = std::make_shared<stall_log>();
  tcp::acceptor acceptor;
  unsigned short port = 0;
  std::atomic<bool> shutting_down{false};
  std::mutex sessions_mutex;
  std::unordered_map<session*, std::weak_ptr<session>> sessions;
};

namespace {

// ---------------------------------------------------------------------------------------
// Small helpers

std::optional<std::uint64_t> parse_u64(std::string_view s) {
  std::uint64_t v = 0;
  if (s.empty() || s.size() > 20) return std::nullopt;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

response make_response(const request& req, http::status status, std::string body,
                       std::string_view content_type) {
  response res{status, req.version()};
  res.set(http::field::server, "coop-demo");
  res.set(http::field::content_type, content_type);
  res.keep_alive(req.keep_alive());
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

response json_response(const request& req, http::status status, const json::value& v) {
  return make_response(req, status, json::serialize(v) + "\n", "application/json");
}

response error_response(const request& req, http::status status, std::string_view message) {
  return json_response(req, status, json::object{{"error", message}});
}

response method_not_allowed(const request& req, std::string_view allow) {
  auto res = error_response(req, http::status::method_not_allowed,
                            "method " + std::string(req.method_string()) + " not allowed here");
  res.set(http::field::allow, allow);
  return res;
}

// Query parameters, decoded, with a check that nothing unexpected was sent.
struct query {
  std::vector<std::pair<std::string, std::optional<std::string>>> params;

  const std::optional<std::string>* find(std::string_view key) const {
    for (const auto& [k, v] : params)
      if (k == key) return &v;
    return nullptr;
  }
  std::optional<std::string> unexpected(std::initializer_list<std::string_view> allowed) const {
    for (const auto& [k, v] : params) {
      if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) return k;
      int count = 0;
      for (const auto& p : params) count += p.first == k;
      if (count > 1) return k + " (repeated)";
    }
    return std::nullopt;
  }
};

// ---------------------------------------------------------------------------------------
// /stream: the body producer is a cooperative task; the session's strand writes.

struct stream_state {
  std::mutex mutex;
  std::deque<std::vector<unsigned char>> queue;  // front() is being written when `writing`
  std::size_t backlog = 0;
  std::size_t max_backlog = 0;
  std::uint64_t produced = 0;
  std::uint64_t written = 0;
  std::uint64_t pauses = 0;
  bool writing = false;
  bool paused = false;             // the producer paused itself and waits for the writer
  bool closed = false;             // the socket failed: stop producing
  bool producer_finished = false;  // its when_done has run
  std::exception_ptr producer_result;
  error_code socket_error;
  std::optional<coop::cooperative_task> task;

  std::uint64_t size = 0;
  std::size_t high_water = 0;
  std::size_t low_water = 0;
  std::function<void()> kick_writer;  // posts the writer to the session's strand

  stream_event event(stream_event::kind k, std::string outcome = {}) const {
    return stream_event{k, size, produced, written, max_backlog, pauses, std::move(outcome)};
  }
};

// One unit: generate one chunk, queue it, pause the task when the socket lags behind.
// It pauses its own task under the stream mutex; the writer resumes it without holding the
// mutex, after it has seen (under the mutex) that the pause happened: so a resume never
// overtakes its pause.
class stream_producer {
public:
  stream_producer(std::shared_ptr<stream_state> s, std::function<void(const stream_event&)> observer)
      : state_(std::move(s)), observer_(std::move(observer)) {}

  coop::step operator()() {
    auto& s = *state_;
    {
      std::lock_guard lock(s.mutex);
      if (s.closed) return coop::step::done;  // the session stops the task anyway
      // The handle is set right after cooperate() returns; a unit running before that
      // cannot pause its task, so it waits (produces nothing) while the backlog is high.
      if (!s.task && s.backlog >= s.high_water) return coop::step::more;
    }
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk_size, s.size - produced_));
    std::vector<unsigned char> chunk(n);
    fill_chunk(index_, chunk);
    const bool last = produced_ + n == s.size;
    bool kick = false;
    std::optional<stream_event> paused_event;
    {
      std::lock_guard lock(s.mutex);
      if (s.closed) return coop::step::done;  // the session stops the task anyway
      produced_ += n;
      ++index_;
      s.backlog += n;
      s.max_backlog = std::max(s.max_backlog, s.backlog);
      s.produced = produced_;
      s.queue.push_back(std::move(chunk));
      if (!s.writing) s.writing = kick = true;
      if (!last && s.backlog >= s.high_water && s.task && !s.paused) {
        error_code ec;
        s.task->pause(ec);
        if (!ec) {
          s.paused = true;
          ++s.pauses;
          if (observer_) paused_event = s.event(stream_event::kind::paused);
        }
      }
    }
    if (kick) s.kick_writer();
    if (paused_event) observer_(*paused_event);
    return last ? coop::step::done : coop::step::more;
  }

private:
  std::shared_ptr<stream_state> state_;
  std::function<void(const stream_event&)> observer_;
  std::uint64_t produced_ = 0;
  std::uint64_t index_ = 0;
};

// ---------------------------------------------------------------------------------------
// One connection. Everything below runs on the connection's strand.

class session : public std::enable_shared_from_this<session> {
public:
  session(tcp::socket&& socket, std::shared_ptr<server::state> server)
      : executor_(socket.get_executor()), stream_(std::move(socket)), server_(std::move(server)) {}

  ~session() { server_->unregister_session(this); }

  void start() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      self->server_->register_session(self.get(), self);
      if (self->server_->shutting_down.load()) return self->close();
      self->read_request();
    });
  }

  // Posted by server::state::shutdown(): an idle connection closes now, a busy one after
  // its in-flight response (keep-alive is off from now on).
  void on_shutdown() {
    if (reading_) stream_.cancel();
  }

  // The strand: fixed at construction, so reading it from another thread is safe.
  asio::any_io_executor executor() const { return executor_; }

private:
  void read_request() {
    parser_.emplace();
    parser_->header_limit(header_limit);
    parser_->body_limit(body_limit);
    stream_.expires_after(server_->options.idle_timeout);
    reading_ = true;
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(error_code ec) {
    request_start_ = std::chrono::steady_clock::now();
    reading_ = false;
    if (ec == http::error::end_of_stream || ec == asio::error::operation_aborted ||
        ec == beast::error::timeout || ec == http::error::partial_message ||
        ec == asio::error::connection_reset || ec == asio::error::eof) {
      return close();
    }
    if (ec) {
      // Malformed: answer once, then close (the rest of the byte stream is not trustworthy).
      request dummy{http::verb::get, "/", 11};
      dummy.keep_alive(false);
      http::status status = http::status::bad_request;
      if (ec == http::error::header_limit) status = http::status::request_header_fields_too_large;
      if (ec == http::error::body_limit) status = http::status::payload_too_large;
      linger_ = true;
      return send(error_response(dummy, status, "malformed request: " + ec.message()));
    }
    handle(parser_->release());
  }

  void send(response res) {
    server_->http.observe(route_, res.result_int(), std::chrono::steady_clock::now() - request_start_);
    if (server_->shutting_down.load()) res.keep_alive(false);
    response_ = std::move(res);
    stream_.expires_after(server_->options.write_timeout);
    http::async_write(stream_, response_, [self = shared_from_this()](error_code ec, std::size_t) {
      self->on_write(ec);
    });
  }

  void on_write(error_code ec) {
    if (!ec && linger_) return linger();
    if (ec || !response_.keep_alive() || server_->shutting_down.load()) return close();
    read_request();
  }

  void close() {
    error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.close();
  }

  // After answering a malformed request: send FIN, then read and discard what the client
  // is still sending (a body, the rest of an oversized header) for a short while. Closing
  // with unread input would make the kernel reset the connection, and the client could
  // lose the error response.
  void linger() {
    error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(std::chrono::seconds(2));
    linger_budget_ = std::size_t{1} << 20;
    reading_ = true;  // shutdown may cancel it
    discard();
  }

  void discard() {
    buffer_.consume(buffer_.size());
    stream_.async_read_some(buffer_.prepare(16 * 1024), [self = shared_from_this()](error_code ec, std::size_t n) {
      if (ec || n >= self->linger_budget_ || self->server_->shutting_down.load()) return self->stream_.close();
      self->linger_budget_ -= n;
      self->discard();
    });
  }

  // --- routing --------------------------------------------------------------------------

  void handle(request req) {
    route_ = "other";
    auto target = boost::urls::parse_origin_form(req.target());
    if (!target) return send(error_response(req, http::status::bad_request, "malformed request target"));
    std::vector<std::string> segments;
    for (auto seg : target->segments()) segments.push_back(seg);
    query q;
    for (auto p : target->params())
      q.params.emplace_back(p.key, p.has_value ? std::optional<std::string>(p.value) : std::nullopt);

    const auto n = segments.size();
    if (n >= 1) {
      const std::string_view first = segments[0];
      if (n == 1 && (first == "ping" || first == "info" || first == "metrics" || first == "jobs" || first == "stream"))
        route_ = first;
      else if (first == "jobs")
        route_ = "job";
    }
    if (n == 1 && segments[0] == "metrics") {
      if (req.method() != http::verb::get) return send(method_not_allowed(req, "GET"));
      return send(make_response(req, http::status::ok,
                                render_metrics(*server_->pool, server_->jobs.all(), server_->http, *server_->stalls),
                                "text/plain; version=0.0.4"));
    }
    if (n == 1 && segments[0] == "ping") {
      if (req.method() != http::verb::get) return send(method_not_allowed(req, "GET"));
      return send(make_response(req, http::status::ok, "pong\n", "text/plain"));
    }
    if (n == 1 && segments[0] == "info") {
      if (req.method() != http::verb::get) return send(method_not_allowed(req, "GET"));
      const auto& o = server_->options;
      json::object info{
          {"threads", o.threads},
          {"cooperators", server_->pool->size()},
          {"slice_us", std::chrono::duration<double, std::micro>(o.cooperator.slice).count()},
          {"fairness", o.cooperator.fairness == coop::fairness::time ? "time" : "units"},
          {"max_active", o.cooperator.max_active},
          {"offload_threads", o.offload_threads},
          {"stall_threshold_ms", std::chrono::duration<double, std::milli>(o.cooperator.stall_threshold).count()},
          {"chunk_bytes", chunk_size},
          {"kinds", json::array{"sha256", "sha512", "sha3-256", "blake2b512", "stall"}},
          {"max_mib", max_job_mib},
          {"max_stream_bytes", max_stream_size}};
      return send(json_response(req, http::status::ok, info));
    }
    if (n == 1 && segments[0] == "jobs") {
      if (req.method() == http::verb::get) return list_jobs(req, q);
      if (req.method() == http::verb::post) return create_job(req, q);
      return send(method_not_allowed(req, "GET, POST"));
    }
    if ((n == 2 || n == 3) && segments[0] == "jobs") return job_route(req, segments, q);
    if (n == 1 && segments[0] == "stream") {
      if (req.method() != http::verb::get) return send(method_not_allowed(req, "GET"));
      return start_stream(req, q);
    }
    send(error_response(req, http::status::not_found, "no such path: " + std::string(target->path())));
  }

  void list_jobs(const request& req, const query& q) {
    if (auto bad = q.unexpected({})) return send(error_response(req, http::status::bad_request, "unexpected parameter: " + *bad));
    json::array out;
    for (const auto& j : server_->jobs.all()) out.push_back(j->to_json());
    send(json_response(req, http::status::ok, out));
  }

  void create_job(const request& req, const query& q) {
    auto bad_request = [&](std::string message) {
      send(error_response(req, http::status::bad_request, message));
    };
    if (auto bad = q.unexpected({"kind", "mib", "mode", "shares", "name", "ms"}))
      return bad_request("unexpected parameter: " + *bad);
    std::string kind = "sha256";
    if (auto k = q.find("kind")) {
      if (!*k || (!digest::supported(**k) && **k != "stall"))
        return bad_request("kind must be one of sha256, sha512, sha3-256, blake2b512, stall");
      kind = **k;
    }
    // A stall job: one unit that spins `ms` milliseconds (the stall detector's demo).
    const bool stall = kind == "stall";
    std::optional<std::uint64_t> mib = 0, stall_ms;
    if (stall) {
      if (q.find("mib")) return bad_request("a stall job takes ms, not mib");
      auto v = q.find("ms");
      stall_ms = v && *v ? parse_u64(**v) : std::nullopt;
      if (!stall_ms || *stall_ms < 1 || *stall_ms > 60000) return bad_request("ms must be an integer from 1 to 60000");
    } else {
      if (q.find("ms")) return bad_request("ms is for kind=stall");
      auto m = q.find("mib");
      if (!m || !*m) return bad_request("missing parameter: mib (1 to 1048576)");
      mib = parse_u64(**m);
      if (!mib || *mib < 1 || *mib > max_job_mib) return bad_request("mib must be an integer from 1 to 1048576");
    }
    bool naive = false, offload = false;
    if (auto mode = q.find("mode")) {
      if (*mode && **mode == "naive") naive = true;
      else if (*mode && **mode == "offload") naive = offload = true;
      else if (!*mode || **mode != "coop") return bad_request("mode must be coop, naive or offload");
      if (naive && stall) return bad_request("a stall job runs on the cooperator");
    }
    unsigned shares = 100;
    if (auto v = q.find("shares")) {
      auto parsed = *v ? parse_u64(**v) : std::nullopt;
      if (!parsed || *parsed < 1 || *parsed > 10000) return bad_request("shares must be an integer from 1 to 10000");
      if (naive) return bad_request(offload ? "an offloaded job has no shares" : "a naive job has no shares");
      shares = static_cast<unsigned>(*parsed);
    }
    std::string name;
    if (auto v = q.find("name")) {
      if (!*v || (*v)->empty() || (*v)->size() > 64) return bad_request("name must be 1 to 64 characters");
      name = **v;
    }
    if (server_->shutting_down.load())
      return send(error_response(req, http::status::service_unavailable, "the server is shutting down"));

    auto j = server_->jobs.create(kind, *mib, naive, std::move(name), offload);
    if (offload) {
      // The common way to keep CPU work off the I/O threads: the whole job, posted to a
      // thread pool. It can be stopped (a flag it checks per chunk), not paused.
      asio::post(server_->offload, [j, hook = server_->options.on_unit] { run_blocking(*j, hook); });
      auto res = json_response(req, http::status::created, json::object{{"id", j->id}});
      res.set(http::field::location, "/jobs/" + std::to_string(j->id));
      return send(std::move(res));
    }
    if (naive) {
      // The starvation demo: the whole job runs right here, blocking this thread of the
      // io_context until it is done. Every other handler waiting for a thread waits with it.
      run_blocking(*j, server_->options.on_unit);
      return send(json_response(req, http::status::ok, j->to_json()));
    }
    auto task = stall ? server_->pool->cooperate(stall_work{std::chrono::milliseconds(*stall_ms)},
                                                             {.name = j->name, .shares = shares})
                      : server_->pool->cooperate(hash_work(j->progress, j->id, server_->options.on_unit),
                                                             {.name = j->name, .shares = shares});
    j->set_task(task);
    task.when_done(asio::bind_executor(server_->ioc.get_executor(),
                                       [j](std::exception_ptr ep) { j->finish_from(ep); }));
    auto res = json_response(req, http::status::created, json::object{{"id", j->id}});
    res.set(http::field::location, "/jobs/" + std::to_string(j->id));
    send(std::move(res));
  }

  void job_route(const request& req, const std::vector<std::string>& segments, const query& q) {
    const auto id = parse_u64(segments[1]);
    if (!id) return send(error_response(req, http::status::bad_request, "a job id is a positive integer"));
    auto j = server_->jobs.find(*id);
    const bool action = segments.size() == 3;
    const bool set_shares = action && segments[2] == "shares";
    if (action && !set_shares && segments[2] != "pause" && segments[2] != "resume" && segments[2] != "stop")
      return send(error_response(req, http::status::not_found, "no such action: " + segments[2]));
    if (auto bad = q.unexpected(set_shares ? std::initializer_list<std::string_view>{"value"}
                                           : std::initializer_list<std::string_view>{}))
      return send(error_response(req, http::status::bad_request, "unexpected parameter: " + *bad));
    if (!action && req.method() != http::verb::get) return send(method_not_allowed(req, "GET"));
    if (action && req.method() != http::verb::post) return send(method_not_allowed(req, "POST"));
    if (!j) return send(error_response(req, http::status::not_found, "no such job: " + segments[1]));
    if (!action) return send(json_response(req, http::status::ok, j->to_json()));

    error_code ec;
    if (set_shares) {
      auto v = q.find("value");
      auto shares = v && *v ? parse_u64(**v) : std::nullopt;
      if (!shares || *shares < 1 || *shares > 10000)
        return send(error_response(req, http::status::bad_request, "value must be an integer from 1 to 10000"));
      ec = j->set_shares(static_cast<unsigned>(*shares));
    } else {
      ec = segments[2] == "pause" ? j->pause() : segments[2] == "resume" ? j->resume() : j->stop();
    }
    if (!ec) return send(json_response(req, http::status::ok, j->to_json()));
    if (ec == boost::system::errc::operation_not_supported)
      return send(error_response(req, http::status::conflict,
                                 std::string(j->offloaded ? "an offloaded" : "a naive") +
                                     (set_shares ? " job has no shares" : " job cannot be paused or resumed")));
    // 409 with the job itself, so the client sees why.
    auto conflict = [&](std::string message) {
      auto body = j->to_json();
      body["error"] = std::move(message);
      send(json_response(req, http::status::conflict, body));
    };
    if (ec == coop::error::not_paused) return conflict("job " + segments[1] + " is not paused");
    if (ec == coop::error::task_done || ec == coop::error::task_stopped || ec == coop::error::task_failed ||
        ec == coop::error::scheduler_stopped)
      return conflict("job " + segments[1] + " has finished (" + ec.message() + ")");
    send(error_response(req, http::status::internal_server_error, ec.message()));
  }

  // --- /stream --------------------------------------------------------------------------

  void start_stream(const request& req, const query& q) {
    if (auto bad = q.unexpected({"size"})) return send(error_response(req, http::status::bad_request, "unexpected parameter: " + *bad));
    auto s = q.find("size");
    if (!s || !*s) return send(error_response(req, http::status::bad_request, "missing parameter: size (bytes)"));
    auto size = parse_u64(**s);
    if (!size || *size > max_stream_size)
      return send(error_response(req, http::status::bad_request, "size must be an integer from 0 to 1099511627776"));
    if (server_->shutting_down.load())
      return send(error_response(req, http::status::service_unavailable, "the server is shutting down"));
    if (*size == 0) return send(make_response(req, http::status::ok, "", "application/octet-stream"));

    auto st = std::make_shared<stream_state>();
    st->size = *size;
    st->high_water = server_->options.stream_high_water;
    st->low_water = server_->options.stream_low_water;
    st->kick_writer = [w = weak_from_this(), ex = stream_.get_executor()] {
      asio::post(ex, [w] {
        if (auto self = w.lock()) self->write_next();
      });
    };
    stream_state_ = st;
    stream_keep_alive_ = req.keep_alive();
    stream_finished_ = false;

    stream_head_.emplace(http::status::ok, req.version());
    stream_head_->set(http::field::server, "coop-demo");
    stream_head_->set(http::field::content_type, "application/octet-stream");
    stream_head_->content_length(*size);
    stream_head_->keep_alive(stream_keep_alive_);
    stream_serializer_.emplace(*stream_head_);
    stream_.expires_after(server_->options.write_timeout);
    http::async_write_header(stream_, *stream_serializer_,
                             [self = shared_from_this()](error_code ec, std::size_t) { self->on_stream_head(ec); });
  }

  void on_stream_head(error_code ec) {
    auto& st = *stream_state_;
    if (ec) {
      std::lock_guard lock(st.mutex);
      st.closed = true;
      st.socket_error = ec;
      st.producer_finished = true;  // never started
    } else {
      // Not under the mutex: no coop call is made while holding it, except the producer's
      // pause of its own task from inside its unit.
      auto task = server_->pool->cooperate(stream_producer(stream_state_, server_->options.on_stream_event));
      {
        std::lock_guard lock(st.mutex);
        st.task = task;
      }
      task.when_done(asio::bind_executor(stream_.get_executor(),
                                         [self = shared_from_this()](std::exception_ptr ep) {
                                           self->on_producer_done(ep);
                                         }));
      return;
    }
    finish_stream();
  }

  void write_next() {
    if (!stream_state_) return;
    auto& st = *stream_state_;
    const std::vector<unsigned char>* front = nullptr;
    {
      std::lock_guard lock(st.mutex);
      if (st.queue.empty() || st.closed) {
        st.writing = false;
        if (!st.producer_finished) return;
      } else {
        front = &st.queue.front();  // deque: push_back keeps references valid
      }
    }
    if (!front) return finish_stream();
    stream_.expires_after(server_->options.write_timeout);
    asio::async_write(stream_, asio::buffer(*front),
                      [self = shared_from_this()](error_code ec, std::size_t n) { self->on_stream_write(ec, n); });
  }

  void on_stream_write(error_code ec, std::size_t n) {
    auto& st = *stream_state_;
    bool resume = false;
    std::optional<coop::cooperative_task> task;
    {
      std::lock_guard lock(st.mutex);
      st.written += n;
      st.backlog -= st.queue.front().size();
      st.queue.pop_front();
      task = st.task;
      if (ec) {
        st.closed = true;
        st.socket_error = ec;
        st.backlog = 0;
        st.queue.clear();
      } else if (st.paused && st.backlog <= st.low_water) {
        st.paused = false;
        resume = true;
      }
    }
    error_code ignored;
    if (ec && task) task->stop(ignored);  // already finished: ignored
    if (resume && task) task->resume(ignored);
    write_next();
  }

  void on_producer_done(std::exception_ptr ep) {
    auto& st = *stream_state_;
    bool idle;
    {
      std::lock_guard lock(st.mutex);
      st.producer_finished = true;
      st.producer_result = ep;
      idle = !st.writing;
    }
    if (idle) finish_stream();
  }

  // Runs once the producer has finished and nothing is being written.
  void finish_stream() {
    if (stream_finished_) return;
    stream_finished_ = true;
    auto st = std::move(stream_state_);
    std::string outcome;
    bool complete = false;
    {
      std::lock_guard lock(st->mutex);
      if (st->socket_error) {
        outcome = "client gone: " + st->socket_error.message();
      } else if (st->producer_result) {
        try {
          std::rethrow_exception(st->producer_result);
        } catch (const std::exception& e) {
          outcome = std::string("producer ended: ") + e.what();
        } catch (...) {
          outcome = "producer ended";
        }
      } else if (st->written == st->size) {
        outcome = "complete";
        complete = true;
      } else {
        outcome = "incomplete";
      }
    }
    if (server_->options.on_stream_event) {
      std::unique_lock lock(st->mutex);
      auto ev = st->event(stream_event::kind::finished, outcome);
      lock.unlock();
      server_->options.on_stream_event(ev);
    }
    stream_serializer_.reset();
    stream_head_.reset();
    if (complete && stream_keep_alive_ && !server_->shutting_down.load()) return read_request();
    close();  // a truncated body can only be signalled by closing
  }

  const asio::any_io_executor executor_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::shared_ptr<server::state> server_;
  std::optional<http::request_parser<http::string_body>> parser_;
  response response_;
  // The request being answered, for http_metrics: when it was read and its route.
  std::chrono::steady_clock::time_point request_start_ = std::chrono::steady_clock::now();
  std::string_view route_ = "other";
  bool reading_ = false;
  bool linger_ = false;
  std::size_t linger_budget_ = 0;

  std::shared_ptr<stream_state> stream_state_;
  std::optional<http::response<http::empty_body>> stream_head_;
  std::optional<http::response_serializer<http::empty_body>> stream_serializer_;
  bool stream_keep_alive_ = false;
  bool stream_finished_ = false;
};

}  // namespace

void server::state::accept() {
  acceptor.async_accept(asio::make_strand(ioc), [self = shared_from_this()](error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !self->acceptor.is_open()) return;
    if (!ec) {
      error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      std::make_shared<session>(std::move(socket), self)->start();
    }
    // Other errors (e.g. too many open files) are per-connection: keep accepting.
    self->accept();
  });
}

void server::state::register_session(session* s, std::weak_ptr<session> w) {
  std::lock_guard lock(sessions_mutex);
  sessions.emplace(s, std::move(w));
}

void server::state::unregister_session(session* s) {
  std::lock_guard lock(sessions_mutex);
  sessions.erase(s);
}

void server::state::shutdown() {
  if (shutting_down.exchange(true)) return;
  asio::post(acceptor.get_executor(), [self = shared_from_this()] {
    error_code ignored;
    self->acceptor.close(ignored);
  });
  pool->stop();  // jobs and stream producers finish with scheduler_stopped
  for (const auto& j : jobs.all())
    if (j->naive) j->request_stop();
  // Collected first: the last reference to a session may drop here, and its destructor
  // takes sessions_mutex.
  std::vector<std::shared_ptr<session>> live;
  {
    std::lock_guard lock(sessions_mutex);
    for (const auto& [ptr, weak] : sessions)
      if (auto s = weak.lock()) live.push_back(std::move(s));
  }
  // Posted, not run here: the session's members belong to its strand.
  for (auto& s : live) asio::post(s->executor(), [s] { s->on_shutdown(); });
}

server::server(asio::io_context& ioc, server_options options)
    : state_(std::make_shared<state>(ioc, std::move(options))) {
  const auto address = asio::ip::make_address(state_->options.address);
  tcp::endpoint endpoint{address, state_->options.port};
  auto& acceptor = state_->acceptor;
  acceptor.open(endpoint.protocol());
  acceptor.set_option(asio::socket_base::reuse_address(true));
  acceptor.bind(endpoint);
  acceptor.listen(asio::socket_base::max_listen_connections);
  state_->port = acceptor.local_endpoint().port();
  state_->accept();
}

server::~server() { shutdown(); }

unsigned short server::port() const noexcept { return state_->port; }

void server::shutdown() { state_->shutdown(); }

std::shared_ptr<job> server::find_job(std::uint64_t id) const { return state_->jobs.find(id); }

coop::cooperator_pool& server::pool() noexcept { return *state_->pool; }

}  // namespace coop_demo
