// SPDX-License-Identifier: BSL-1.0
// Where callable tasks live: blocks of one size carved in order from 64 KiB chunks, per
// thread and size, apart from everything else the program allocates.
//
// Why: with many tasks a unit costs about what reading its task costs, and the hardware
// streams every byte between one task and the next, touched or not. From the general heap
// a task sits beside whatever was allocated just before and after it (a `when_done`
// operation, a user's buffer), and in a 16-byte size class with an 8-byte header; here the
// tasks a thread makes are packed at their own size, 8-byte granular.
//
// A thread carves from its chunk with no atomic operation; a block freed on any thread
// goes back to its chunk with one compare-and-swap, and the carving thread takes those
// back (all at once) before it carves further, so a chunk is left only when all its blocks
// are in use (or its thread ends). A chunk left that has half its blocks free again is
// listed, and the next thread that needs a chunk of that size carves it before making a
// new one: a few long-lived tasks do not keep whole chunks to themselves, and the chunks
// held are at most about twice what the tasks alive at once need. A chunk whose last block
// is freed and that no thread carves is kept, empty, for the next chunk a thread needs (up
// to 16 MiB of them, process-wide); beyond that it goes back to operator new's heap.
#pragma once

#include <cstddef>
#include <new>

namespace coop::detail::task_arena {

/// The largest block the arena gives; larger tasks use operator new.
inline constexpr std::size_t max_block = 256;
/// Empty chunks kept for reuse at most, process-wide (64 KiB each).
inline constexpr std::size_t spare_chunks_kept = 256;

/// A block of `block` bytes (a multiple of 8, at most max_block) aligned to 16 when
/// `block` is a multiple of 16, else to 8. Throws std::bad_alloc (from operator new) when
/// a new chunk is needed and cannot be had.
void* allocate(std::size_t block);
/// Frees a block of `block` bytes from allocate(), on any thread.
void deallocate(void* p, std::size_t block) noexcept;
/// Lets go of the calling thread's partly carved chunks (each is freed once its blocks
/// are): what thread exit does. For tests that count the heap's live allocations.
void release_thread_chunks() noexcept;
/// Hands the empty chunks kept for reuse back to operator new's heap. For tests that count
/// the heap's live allocations.
void release_spare_chunks() noexcept;
/// Chunks in use (some block allocated or a thread carving it), all threads (a snapshot;
/// for tests).
std::size_t chunks_live() noexcept;
/// Empty chunks kept for reuse (for tests).
std::size_t chunks_spare() noexcept;

/// The block a type of `size` bytes and alignment `align` takes, or 0 when it does not
/// come from the arena (too large, or aligned beyond 16).
constexpr std::size_t block_for(std::size_t size, std::size_t align) noexcept {
  if (align > 16) return 0;
  const std::size_t granule = align > 8 ? 16 : 8;
  const std::size_t block = (size + granule - 1) / granule * granule;
  return block <= max_block ? block : 0;
}

/// Class-level allocation for a task type of `Size` bytes and alignment `Align` (at most
/// the default new alignment; the type's aligned allocation functions take the others):
/// from the arena when it fits, else from the global operator new.
template <std::size_t Size, std::size_t Align> struct allocation {
  static constexpr std::size_t block = block_for(Size, Align);
  static void* allocate() {
    if constexpr (block != 0) return task_arena::allocate(block);
    else return ::operator new(Size);
  }
  static void deallocate(void* p) noexcept {
    if constexpr (block != 0) task_arena::deallocate(p, block);
    else ::operator delete(p);
  }
};

/// A task type's class allocation functions, as a base of `Task`: from the arena when it
/// fits, else from the global operator new; an over-aligned task takes the aligned forms,
/// from the heap. Empty: it adds nothing to the task.
template <class Task> struct arena_allocated {
  static void* operator new(std::size_t) { return allocation<sizeof(Task), alignof(Task)>::allocate(); }
  static void operator delete(void* p) noexcept { allocation<sizeof(Task), alignof(Task)>::deallocate(p); }
  static void* operator new(std::size_t size, std::align_val_t a) { return ::operator new(size, a); }
  static void operator delete(void* p, std::align_val_t a) noexcept { ::operator delete(p, a); }
};

}  // namespace coop::detail::task_arena
