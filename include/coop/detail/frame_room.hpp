// SPDX-License-Identifier: BSL-1.0
// A steps coroutine's frame and the task that runs it in one allocation: the frame is
// allocated with room in front of it for its task, and cooperate() places the task there.
// A short coroutine task otherwise pays a second malloc and free for its task object.
// Blocks up to the task arena's largest come from it (task_arena.hpp), as callable tasks
// do: a coroutine task of a few hundred bytes is packed with the thread's other tasks.
#pragma once

#include <coop/detail/task_arena.hpp>

#include <cstddef>
#include <cstdint>
#include <new>
#include <utility>

namespace coop::detail {

/// `n` rounded up to the alignment operator new gives (the frame's and the task's).
constexpr std::size_t round_to_new_alignment(std::size_t n) noexcept {
  constexpr std::size_t align = __STDCPP_DEFAULT_NEW_ALIGNMENT__;
  return (n + align - 1) / align * align;
}

/// A block is [room for the task][header][frame]. The task outlives the frame (it destroys
/// the frame), so once a task is placed in the room the task's deallocation frees the
/// block and the frame's frees nothing; a frame no task took frees its block itself.
struct frame_room {
  /// The room a frame reserves for a task of type `Task`: its size, rounded so the frame
  /// stays aligned; none for an over-aligned task (it is allocated on its own).
  template <class Task>
  static constexpr std::size_t room_for() noexcept {
    return alignof(Task) > __STDCPP_DEFAULT_NEW_ALIGNMENT__ ? 0 : round_to_new_alignment(sizeof(Task));
  }

  /// Frames up to this size get room. A placed task keeps its frame's memory until the
  /// task goes (its last handle and wait), so a large frame (a coroutine with a buffer in
  /// it) is allocated alone and freed as it is destroyed; beside its size, the task's own
  /// allocation costs little.
  static constexpr std::size_t max_frame_with_room = 1024;

  /// A new frame of `frame_size` bytes with `room` bytes in front of it (none while
  /// callable work makes its coroutine: that work's task exists already).
  static void* allocate_frame(std::size_t frame_size, std::size_t room) {
    if (callable_makes_frame || frame_size > max_frame_with_room) room = 0;
    std::uint32_t block = 0;
    char* start = allocate_block(room + header_size + frame_size, block);
    ::new (start + room) header{room, block, false};
    return start + room + header_size;
  }

  /// The frame's deallocation: frees its block unless a task lives in the room.
  static void deallocate_frame(void* frame) noexcept {
    header* h = header_of(frame);
    if (h->task_placed) return;  // the task frees the block when it goes
    free_block(reinterpret_cast<char*>(h) - h->room, h->block);
  }

  /// A task of type `Task` whose frame had no room for it: a block of its own, laid out as
  /// if the task had been placed (the task, then a header saying where the block is from).
  template <class Task>
  static void* allocate_task_alone() {
    constexpr std::size_t room = room_for<Task>();
    static_assert(room != 0, "an over-aligned task takes the aligned allocation functions");
    std::uint32_t block = 0;
    char* start = allocate_block(room + header_size, block);
    ::new (start + room) header{room, block, true};
    return start;
  }

  /// The deallocation of a task of type `Task`, placed in its frame's room or alone: its
  /// block, whose header follows the task.
  template <class Task>
  static void deallocate_task(void* task) noexcept {
    char* start = static_cast<char*>(task);
    header* h = std::launder(reinterpret_cast<header*>(start + room_for<Task>()));
    free_block(start, h->block);
  }

  /// The room in front of `frame` for a task of `size` bytes, now taken; null if the
  /// frame has no such room.
  static void* take_room(void* frame, std::size_t size) noexcept {
    header* h = header_of(frame);
    if (h->room < size) return nullptr;
    h->task_placed = true;
    return reinterpret_cast<char*>(h) - h->room;
  }

  /// take_room() for the frame a coop::steps or steps_of<T> object owns.
  template <class Steps>
  static void* take_room_of(const Steps& steps, std::size_t size) noexcept {
    return take_room(steps.frame_.address(), size);
  }

  /// While it lives, frames made on this thread get no room (callable work's).
  class no_room_scope {
  public:
    no_room_scope() noexcept : saved_(std::exchange(callable_makes_frame, true)) {}
    ~no_room_scope() { callable_makes_frame = saved_; }
    no_room_scope(const no_room_scope&) = delete;
    no_room_scope& operator=(const no_room_scope&) = delete;

  private:
    bool saved_;
  };

private:
  struct header {
    std::size_t room;     // bytes in front of the header
    std::uint32_t block;  // the task arena's block the allocation is, or 0: operator new's
    bool task_placed;
  };
  static constexpr std::size_t header_size = round_to_new_alignment(sizeof(header));

  static char* allocate_block(std::size_t size, std::uint32_t& block) {
    block = static_cast<std::uint32_t>(task_arena::block_for(size, __STDCPP_DEFAULT_NEW_ALIGNMENT__));
    return static_cast<char*>(block ? task_arena::allocate(block) : ::operator new(size));
  }
  static void free_block(char* start, std::uint32_t block) noexcept {
    if (block) task_arena::deallocate(start, block);
    else ::operator delete(start);
  }

  static header* header_of(void* frame) noexcept {
    return std::launder(reinterpret_cast<header*>(static_cast<char*>(frame) - header_size));
  }

  static inline constinit thread_local bool callable_makes_frame = false;
};

}  // namespace coop::detail
