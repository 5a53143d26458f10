// SPDX-License-Identifier: BSL-1.0
// A parked when_done (or coiterate) operation: the handler, work on its executor, and a
// cancellation handler on its slot. Modeled on Beast's saved_handler: allocated with the
// handler's allocator, memory freed before the handler is invoked, slot cleared on the
// handler's executor before completion.
//
// With a `Value` (result tasks, result_task.hpp) the op also carries the task's result:
// decided at its first completion, copied for when_done, moved for coiterate (its only
// waiter), and moved into the handler: `void(std::exception_ptr, Value)`.
#pragma once

#include <coop/detail/cooperator_core.hpp>
#include <coop/detail/drop_guard.hpp>
#include <coop/detail/strand_entry.hpp>
#include <coop/detail/task_base.hpp>
#include <coop/detail/task_result.hpp>
#include <coop/detail/tracked_work.hpp>

#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>

#include <exception>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

namespace coop::detail {

/// The op's part that carries a value (nothing for Value void).
template <class Value> struct carried_value {
  explicit carried_value(result_slot<Value>* s) noexcept : source(s) {}
  result_slot<Value>* source;
  std::optional<Value> value;  // decided at the first completion
};
template <> struct carried_value<void> {
  explicit carried_value(result_slot<void>*) noexcept {}
};

/// The waiter interface of an op: a result_waiter when it carries a value.
template <class Op, class Value> class waiter_base_for : public result_waiter<Value> {
public:
  void value_final() noexcept override { static_cast<Op*>(this)->redeliver_value(); }

protected:
  ~waiter_base_for() = default;
};
template <class Op> class waiter_base_for<Op, void> : public waiter_base {
protected:
  ~waiter_base_for() = default;
};

/// What asio::associated_executor gives for a handler without an executor of its own.
struct no_associated_executor {};

template <class Handler, class Value = void>
class when_done_op final : public waiter_base_for<when_done_op<Handler, Value>, Value> {
  using handler_executor = asio::associated_executor_t<Handler, cooperator_core::executor_type>;
  // No executor of its own: the completion runs on the strand of the cooperator that
  // delivers it (in a pool, the member the task finished on, wherever it was waited for).
  static constexpr bool on_deliverers_strand =
      std::is_same_v<asio::associated_executor_t<Handler, no_associated_executor>, no_associated_executor>;
  // Outstanding work, either executor model. A completion on the deliverer's strand holds
  // it on the strand's execution context directly (the member it will run on is not known
  // yet, and all members share the context): a tracked copy of the strand would cost a
  // lock, a strand copy and the copies inside post() of the type-erased executor. Empty
  // when the context has already shut down (the wait is then destroyed, never run).
  using work_type = std::conditional_t<on_deliverers_strand, std::optional<tracked_work<asio::any_io_executor>>,
                                       tracked_work<handler_executor>>;
  using work_executor = typename tracked_work<handler_executor>::executor_type;
  using allocator_type = typename std::allocator_traits<
      asio::associated_allocator_t<Handler>>::template rebind_alloc<when_done_op>;

public:
  /// Allocates the op; `stops_task`: cancellation stops the task (coiterate) instead of
  /// ending only this wait (when_done).
  /// `source`: the task's result (Value non-void).
  static when_done_op* create(Handler&& handler, std::shared_ptr<cooperator_core> core, task_ptr task,
                              bool stops_task, result_slot<Value>* source = nullptr) {
    allocator_type alloc(asio::get_associated_allocator(handler));
    when_done_op* op = std::allocator_traits<allocator_type>::allocate(alloc, 1);
    try {
      std::allocator_traits<allocator_type>::construct(alloc, op, std::move(handler), std::move(core), std::move(task),
                                                       stops_task, source);
    } catch (...) {
      std::allocator_traits<allocator_type>::deallocate(alloc, op, 1);
      throw;
    }
    auto slot = asio::get_associated_cancellation_slot(op->handler_);
    if (slot.is_connected()) {
      try {
        slot.template emplace<cancel_handler>(op);
      } catch (...) {
        deallocate(op, allocator_type(asio::get_associated_allocator(op->handler_)));
        throw;
      }
    }
    return op;
  }

  when_done_op(Handler&& handler, std::shared_ptr<cooperator_core> core, task_ptr task, bool stops_task,
               result_slot<Value>* source)
      : handler_(std::move(handler)),
        work_(make_work(handler_, *core)),
        core_(std::move(core)),
        task_(std::move(task)),
        stops_task_(stops_task),
        value_(source) {}

  bool complete(std::exception_ptr result, [[maybe_unused]] cooperator_core& by) noexcept override {
    if constexpr (!std::is_void_v<Value>) {
      if (!value_.value && !decide_value(result)) {
        // The work may still change: completed again by redeliver_value(), after its unit.
        this->result_ = std::move(result);
        value_.source->defer(*this);
        return true;
      }
    }
    if constexpr (on_deliverers_strand) {
      if (by.batch_completion(*this, result)) return true;  // a tick's: run with the others
    }
    drop_guard guard(this);
    try {
      if constexpr (on_deliverers_strand) {
        // The strand of the core that delivers (in a pool, the member the task finished
        // on, wherever it was waited for), read under its lock: no copy of it to make,
        // and not the tracked copy the op holds its work with, each of whose copies
        // inside the post would count the work again. (The work tracked stays the
        // waited-on strand's: the same execution context.)
        if (const auto* strand = by.locked_strand())
          post_into_strand(*strand, completion(this, std::move(result)), this, redeliver{this});
        else
          completion(this, nullptr).discard();  // the context has shut down: its strand is gone
      } else {
        send(completion(this, std::move(result)));
      }
    } catch (...) {
      // Out of memory. A dropped completion left the op and its result with us (its
      // destructor saw the guard): the caller keeps it to try again.
    }
    return !guard.dropped();
  }

  /// The value became final (result_slot::work_finished): completes it again.
  void redeliver_value() noexcept { core_->redeliver(*this, std::move(this->result_)); }

  void invoke() override { completion(this, std::move(this->result_))(); }

  void destroy() noexcept override {
    clear_slot();
    deallocate(this, allocator_type(asio::get_associated_allocator(handler_)));
  }

private:
  struct cancel_handler {
    explicit cancel_handler(when_done_op* o) noexcept : op(o) {}  // clang 14: no paren-init of aggregates
    when_done_op* op;
    void operator()(asio::cancellation_type type) const {
      cooperator_core& core = *op->core_;
      if (op->stops_task_) {
        // Stopping is a side effect no one can take back: only terminal or partial.
        if (!!(type & (asio::cancellation_type::terminal | asio::cancellation_type::partial)))
          core.cancel_task(*op->task_);
      } else if (!!(type & asio::cancellation_type::all)) {
        core.cancel_waiter(*op->task_, *op);
      }
    }
  };

  // The posted completion: owns the op until it runs, or destroys it with the queue.
  struct completion {
    when_done_op* op;
    std::exception_ptr result;
    using allocator_type = asio::associated_allocator_t<Handler>;
    allocator_type get_allocator() const noexcept { return asio::get_associated_allocator(op->handler_); }
    completion(when_done_op* o, std::exception_ptr r) noexcept : op(o), result(std::move(r)) {}
    completion(completion&& other) noexcept : op(std::exchange(other.op, nullptr)), result(std::move(other.result)) {}
    completion& operator=(completion&&) = delete;
    /// Destroys the op unrun, as a queue that is destroyed does.
    void discard() noexcept { std::exchange(op, nullptr)->destroy(); }
    ~completion() {
      if (!op) return;
      if (drop_guard::report_drop(op)) op->result_ = std::move(result);  // a failed post: the poster keeps the op
      else op->destroy();  // its queue was destroyed (the execution context shut down)
    }
    void operator()() {
      when_done_op* o = std::exchange(op, nullptr);
      drop_guard::report_run(o);  // the op is freed below: its address may come back
      o->clear_slot();
      allocator_type alloc(asio::get_associated_allocator(o->handler_));
      Handler handler(std::move(o->handler_));
      work_type work(std::move(o->work_));  // held until the handler has run
      if constexpr (std::is_void_v<Value>) {
        deallocate(o, alloc);
        std::move(handler)(std::move(result));
      } else {
        Value value(std::move(*o->value_.value));
        deallocate(o, alloc);
        std::move(handler)(std::move(result), std::move(value));
      }
    }
  };

  // Called under the core's lock at the first completion; false while the value may
  // still change. A task not yet finished means this wait was cancelled.
  bool decide_value([[maybe_unused]] std::exception_ptr& result) noexcept {
    if constexpr (!std::is_void_v<Value>) {
      result_slot<Value>& source = *value_.source;
      if (task_->retired_ && !source.final()) return false;
      try {
        if (!task_->retired_) source.give_for_cancelled_wait(value_.value);
        else source.give(value_.value, control::state(task_->control_.load(std::memory_order_acquire)), stops_task_);
      } catch (...) {
        // The copy of the value failed: the wait completes with that exception.
        result = std::current_exception();
        result_slot<Value>::give_default(value_.value);
      }
      if (!value_.value) std::terminate();  // no value and no way to make one (see result_task.hpp)
    }
    return true;
  }

  static work_type make_work(Handler& handler, cooperator_core& core) {
    if constexpr (on_deliverers_strand) {
      if (const asio::any_io_executor* ex = core.context_executor()) return work_type(std::in_place, *ex);
      return std::nullopt;
    } else {
      return work_type(asio::get_associated_executor(handler, core.get_executor()));
    }
  }

  // The handler's executor gets the completion; a strand (one the handler is bound to)
  // is entered through its inner executor from outside (strand_entry.hpp).
  void send(completion&& c) {
    if constexpr (is_strand<work_executor>::value)
      post_into_strand(work_.executor(), std::move(c), this, redeliver{this});
    else
      asio::post(work_.executor(), std::move(c));
  }

  // The dispatch into the strand dropped the completion (out of memory): the op and its
  // result are back with us; the cooperator posts it again.
  struct redeliver {
    when_done_op* op;
    void operator()() const noexcept { op->core_->redeliver(*op, std::move(op->result_)); }
  };

  void clear_slot() noexcept {
    auto slot = asio::get_associated_cancellation_slot(handler_);
    if (slot.is_connected()) slot.clear();
  }

  static void deallocate(when_done_op* op, allocator_type alloc) noexcept {
    std::allocator_traits<allocator_type>::destroy(alloc, op);
    std::allocator_traits<allocator_type>::deallocate(alloc, op, 1);
  }

  Handler handler_;
  work_type work_;
  std::shared_ptr<cooperator_core> core_;  // alive for a late cancellation or a redelivery
  task_ptr task_;
  bool stops_task_;
  carried_value<Value> value_;
};

}  // namespace coop::detail
