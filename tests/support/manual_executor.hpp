// SPDX-License-Identifier: BSL-1.0
// A hand-driven executor for deterministic tests: Twisted's FakeScheduler in Asio form.
// Nothing runs until the test calls poll_one()/poll(); outstanding work is counted so a
// test can assert that a cooperator with nothing runnable holds none.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/execution_context.hpp>

#include <atomic>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <utility>

namespace coop_test {

namespace asio = boost::asio;

class manual_context : public asio::execution_context {
public:
  template <bool Tracked> class basic_executor;
  using executor_type = basic_executor<false>;

  manual_context() = default;
  ~manual_context() {
    shutdown();   // services first (as io_context does), then queued handlers are destroyed
    std::lock_guard lock(mutex_);
    queue_.clear();
  }

  executor_type get_executor() noexcept;

  // Runs one queued function; returns how many ran (0 or 1). Inside it, a dispatch
  // (blocking.possibly) runs inline, as it does on an io_context thread.
  std::size_t poll_one() {
    std::unique_ptr<function_base> f;
    {
      std::lock_guard lock(mutex_);
      if (queue_.empty()) return 0;
      f = std::move(queue_.front());
      queue_.pop_front();
    }
    struct polling_scope {   // restored also when the function throws
      polling_ctx* outer;
      explicit polling_scope(polling_ctx* self) : outer(polling_) { polling_ = self; }
      ~polling_scope() { polling_ = outer; }
    } scope(this);
    f->call();
    return 1;
  }
  // Runs what is queued, including what that queues, until the queue is empty.
  std::size_t poll() {
    std::size_t n = 0;
    while (poll_one()) ++n;
    return n;
  }
  std::size_t queued() const {
    std::lock_guard lock(mutex_);
    return queue_.size();
  }
  std::size_t outstanding_work() const noexcept { return work_.load(); }

private:
  struct function_base {
    virtual ~function_base() = default;
    virtual void call() = 0;
  };
  template <class F> struct function final : function_base {
    explicit function(F f) : f_(std::move(f)) {}
    void call() override { std::move(f_)(); }
    F f_;
  };

  template <class F> void enqueue(F&& f) {
    auto p = std::make_unique<function<std::decay_t<F>>>(std::forward<F>(f));
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(p));
  }

  using polling_ctx = manual_context;
  static inline thread_local manual_context* polling_ = nullptr;  // whose poll_one() runs here

  mutable std::mutex mutex_;
  std::deque<std::unique_ptr<function_base>> queue_;
  std::atomic<std::size_t> work_{0};
};

template <bool Tracked> class manual_context::basic_executor {
public:
  explicit basic_executor(manual_context& ctx) noexcept : ctx_(&ctx) {
    if constexpr (Tracked) ++ctx_->work_;
  }
  basic_executor(const basic_executor& other) noexcept : ctx_(other.ctx_), possibly_(other.possibly_) {
    if constexpr (Tracked) ++ctx_->work_;
  }
  basic_executor(basic_executor&& other) noexcept : ctx_(other.ctx_), possibly_(other.possibly_) {
    if constexpr (Tracked) ++ctx_->work_;
  }
  basic_executor& operator=(const basic_executor& other) noexcept {
    basic_executor copy(other);
    std::swap(ctx_, copy.ctx_);
    possibly_ = other.possibly_;
    return *this;
  }
  ~basic_executor() {
    if constexpr (Tracked) --ctx_->work_;
  }

  manual_context& query(asio::execution::context_t) const noexcept { return *ctx_; }
  asio::execution::blocking_t query(asio::execution::blocking_t) const noexcept {
    return possibly_ ? asio::execution::blocking_t(asio::execution::blocking.possibly)
                     : asio::execution::blocking_t(asio::execution::blocking.never);
  }
  asio::execution::outstanding_work_t query(asio::execution::outstanding_work_t) const noexcept {
    return Tracked ? asio::execution::outstanding_work_t(asio::execution::outstanding_work.tracked)
                   : asio::execution::outstanding_work_t(asio::execution::outstanding_work.untracked);
  }
  basic_executor require(asio::execution::blocking_t::never_t) const noexcept {
    basic_executor e(*this);
    e.possibly_ = false;
    return e;
  }
  basic_executor require(asio::execution::blocking_t::possibly_t) const noexcept {
    basic_executor e(*this);
    e.possibly_ = true;
    return e;
  }
  basic_executor<true> require(asio::execution::outstanding_work_t::tracked_t) const noexcept {
    basic_executor<true> e(*ctx_);
    e.possibly_ = possibly_;
    return e;
  }
  basic_executor<false> require(asio::execution::outstanding_work_t::untracked_t) const noexcept {
    basic_executor<false> e(*ctx_);
    e.possibly_ = possibly_;
    return e;
  }

  template <class F> void execute(F&& f) const {
    if (possibly_ && polling_ == ctx_) {
      std::decay_t<F> local(std::forward<F>(f));
      std::move(local)();
    } else {
      ctx_->enqueue(std::forward<F>(f));
    }
  }

  friend bool operator==(const basic_executor& a, const basic_executor& b) noexcept {
    return a.ctx_ == b.ctx_;
  }
  friend bool operator!=(const basic_executor& a, const basic_executor& b) noexcept {
    return a.ctx_ != b.ctx_;
  }

private:
  template <bool> friend class basic_executor;
  manual_context* ctx_;
  bool possibly_ = true;  // as io_context: dispatch runs inline inside this context's poll_one()
};

inline manual_context::executor_type manual_context::get_executor() noexcept {
  return executor_type(*this);
}

}  // namespace coop_test
