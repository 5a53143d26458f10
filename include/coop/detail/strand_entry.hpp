// SPDX-License-Identifier: BSL-1.0
// Queues a handler on a strand so that running out of memory can fail only before
// anything is queued. Posted to while idle, Boost 1.81's strand queues the handler and
// then posts its invoker to the inner executor; when that second post fails, the strand
// stays locked with the handler queued and nothing posted to it ever runs again. So the
// handler first goes to the inner executor, and from there into the strand by dispatch:
// on a thread that runs the inner executor, the strand then runs its invoker inline, and
// the one allocation left (the strand's wrapper of the handler) fails before queueing.
#pragma once

#include <coop/detail/drop_guard.hpp>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include <type_traits>
#include <utility>

namespace coop::detail {

namespace asio = boost::asio;

template <class Executor> struct is_strand : std::false_type {};
template <class Inner> struct is_strand<asio::strand<Inner>> : std::true_type {};

/// The hop through the inner executor. `Handler`, destroyed without having run, must call
/// drop_guard::report_drop(id); `OnDrop` is called when the dispatch into the strand
/// dropped it (out of memory): the handler's owner must send it again.
template <class Strand, class Handler, class OnDrop>
struct strand_entry {
  Strand strand;
  Handler handler;
  const void* id;
  OnDrop on_drop;

  void operator()() {
    drop_guard guard(id);
    try {
      asio::dispatch(strand, std::move(handler));
    } catch (...) {
      if (!guard.dropped()) throw;  // a handler the strand ran inline threw: Asio's rules
    }
    if (guard.dropped()) on_drop();
  }
};

/// A handler that has nothing to hand back when dropped (its loss is accepted) still
/// reports the drop, so that the entry does not take the failed dispatch for an exception
/// from a handler and let it escape into run().
template <class F>
class drop_reporting {
public:
  drop_reporting(F f, const void* id) : f_(std::move(f)), id_(id) {}
  drop_reporting(drop_reporting&& other) noexcept(std::is_nothrow_move_constructible_v<F>)
      : f_(std::move(other.f_)), id_(std::exchange(other.id_, nullptr)) {}
  drop_reporting& operator=(drop_reporting&&) = delete;
  ~drop_reporting() {
    if (id_) drop_guard::report_drop(id_);
  }
  void operator()() {
    drop_guard::report_run(std::exchange(id_, nullptr));
    f_();
  }

private:
  F f_;
  const void* id_;
};

/// Posts `handler` to `strand` (never runs it inline). Throws, with nothing queued, when
/// out of memory.
template <class Strand, class Handler, class OnDrop>
void post_into_strand(const Strand& strand, Handler&& handler, const void* id, OnDrop on_drop) {
  if (strand.running_in_this_thread()) {
    asio::post(strand, std::forward<Handler>(handler));  // the strand is locked: this only queues
  } else {
    asio::post(strand.get_inner_executor(),
               strand_entry<Strand, std::decay_t<Handler>, OnDrop>{strand, std::forward<Handler>(handler), id,
                                                                    std::move(on_drop)});
  }
}

}  // namespace coop::detail
