// SPDX-License-Identifier: BSL-1.0
// coop::steps over real I/O: a producer task writes a large buffer to a loopback TCP
// socket with `co_yield asio::async_write(..., asio::deferred)` while a reader on the same
// io_context checks every byte.
#define BOOST_TEST_MODULE steps_socket
#include <boost/test/unit_test.hpp>

#include <coop/coop.hpp>

#include "support/exception_kind.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/core/demangle.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <typeinfo>
#include <vector>

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

using coop_test::kind;

error_code code_of(const std::exception_ptr& ep) {
  try {
    if (ep) std::rethrow_exception(ep);
  } catch (const boost::system::system_error& e) {
    return e.code();
  } catch (...) {
  }
  return {};
}

constexpr std::size_t total_size = 8u << 20;  // 8 MiB
constexpr std::size_t chunk_size = 256u << 10;

// A pattern with no short period, so a lost, repeated or reordered chunk shows.
std::vector<unsigned char> make_pattern(std::size_t n) {
  std::vector<unsigned char> v(n);
  std::uint32_t x = 0x12345678u;
  for (auto& b : v) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b = static_cast<unsigned char>(x);
  }
  return v;
}

// Compares received bytes with the expected stream.
struct byte_checker {
  const std::vector<unsigned char>& expected;
  std::size_t received = 0;
  std::size_t mismatches = 0;
  std::size_t first_mismatch = static_cast<std::size_t>(-1);

  void check(const unsigned char* data, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t at = received + i;
      if (at >= expected.size() || data[i] != expected[at]) {
        if (mismatches++ == 0) first_mismatch = at;
      }
    }
    received += n;
  }
};

// A connected loopback pair, with a watchdog that closes both ends if the test hangs.
struct loopback_fixture {
  asio::io_context io;
  tcp::socket writer{io};
  tcp::socket reader{io};
  asio::steady_timer watchdog{io};
  bool watchdog_fired = false;
  int remaining = 2;  // the producer and the reader

  loopback_fixture() {
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    writer.connect(acceptor.local_endpoint());
    acceptor.accept(reader);
    watchdog.expires_after(std::chrono::seconds(120));
    watchdog.async_wait([this](error_code ec) {
      if (ec) return;
      watchdog_fired = true;
      error_code ignored;
      writer.close(ignored);
      reader.close(ignored);
    });
  }
  void one_finished() {
    if (--remaining == 0) watchdog.cancel();
  }
};

// Writes `data` in chunks, one co_yield per chunk.
coop::steps produce(tcp::socket& sock, const std::vector<unsigned char>& data, coop::cooperator& c,
                    std::vector<std::size_t>& written, int& off_strand, bool& write_pending) {
  for (std::size_t offset = 0; offset < data.size(); offset += chunk_size) {
    const std::size_t n = std::min(chunk_size, data.size() - offset);
    write_pending = true;
    std::size_t w = co_yield asio::async_write(sock, asio::buffer(data.data() + offset, n), asio::deferred);
    write_pending = false;
    written.push_back(w);
    if (!c.get_executor().running_in_this_thread()) ++off_strand;
  }
  sock.shutdown(tcp::socket::shutdown_send);
}

// Reads until the stream ends; the end (eof) fails the task, as any failed operation does.
coop::steps consume(tcp::socket& sock, byte_checker& checker, std::size_t& reads) {
  std::vector<unsigned char> buffer(64u << 10);
  for (;;) {
    std::size_t n = co_yield sock.async_read_some(asio::buffer(buffer), asio::deferred);
    ++reads;
    checker.check(buffer.data(), n);
  }
}

}  // namespace

BOOST_FIXTURE_TEST_CASE(producer_task_writes_8_mib_while_a_callback_reader_checks_every_byte, loopback_fixture) {
  const auto data = make_pattern(total_size);
  coop::cooperator c(io);
  std::vector<std::size_t> written;
  int off_strand = 0;
  bool write_pending = false;
  long units_during_writes = 0;
  bool producer_done = false;

  std::exception_ptr producer_result;
  int producer_calls = 0;
  c.cooperate(produce(writer, data, c, written, off_strand, write_pending))
      .when_done([&](std::exception_ptr ep) {
        ++producer_calls;
        producer_result = ep;
        producer_done = true;
        one_finished();
      });
  // Another task runs on while the producer waits for the socket.
  c.cooperate([&] {
    if (write_pending) ++units_during_writes;
    return producer_done ? coop::step::done : coop::step::more;
  });

  byte_checker checker{data};
  error_code reader_end;
  std::vector<unsigned char> buffer(64u << 10);
  std::function<void()> read_more = [&] {
    reader.async_read_some(asio::buffer(buffer), [&](error_code ec, std::size_t n) {
      checker.check(buffer.data(), n);
      if (ec) {
        reader_end = ec;
        one_finished();
        return;
      }
      read_more();
    });
  };
  read_more();

  const auto start = std::chrono::steady_clock::now();
  io.run();
  const auto elapsed = std::chrono::steady_clock::now() - start;

  BOOST_TEST(!watchdog_fired);
  BOOST_TEST((elapsed < std::chrono::seconds(120)));
  BOOST_TEST(producer_calls == 1);
  BOOST_TEST(kind(producer_result) == "null");
  BOOST_TEST(written.size() == total_size / chunk_size);
  BOOST_TEST(std::count(written.begin(), written.end(), chunk_size) == static_cast<long>(written.size()));
  BOOST_TEST(off_strand == 0);
  BOOST_TEST(units_during_writes > 0);
  BOOST_TEST(reader_end == error_code(asio::error::eof));
  BOOST_TEST(checker.received == total_size);
  BOOST_TEST(checker.mismatches == 0u, "first mismatch at byte " << checker.first_mismatch);
}

BOOST_FIXTURE_TEST_CASE(producer_and_reader_both_coroutine_tasks_of_one_cooperator, loopback_fixture) {
  const auto data = make_pattern(total_size);
  coop::cooperator c(io);
  std::vector<std::size_t> written;
  int off_strand = 0;
  bool write_pending = false;
  byte_checker checker{data};
  std::size_t reads = 0;

  std::exception_ptr producer_result, reader_result;
  int producer_calls = 0, reader_calls = 0;
  c.cooperate(produce(writer, data, c, written, off_strand, write_pending)).when_done([&](std::exception_ptr ep) {
    ++producer_calls;
    producer_result = ep;
    one_finished();
  });
  c.cooperate(consume(reader, checker, reads)).when_done([&](std::exception_ptr ep) {
    ++reader_calls;
    reader_result = ep;
    one_finished();
  });

  io.run();

  BOOST_TEST(!watchdog_fired);
  BOOST_TEST(producer_calls == 1);
  BOOST_TEST(kind(producer_result) == "null");
  BOOST_TEST(written.size() == total_size / chunk_size);
  BOOST_TEST(off_strand == 0);
  // The reader ends on eof: a failed awaited operation fails its task with system_error.
  BOOST_TEST(reader_calls == 1);
  BOOST_TEST(kind(reader_result) == kind<boost::system::system_error>());
  BOOST_TEST(code_of(reader_result) == error_code(asio::error::eof));
  BOOST_TEST(checker.received == total_size);
  BOOST_TEST(reads >= total_size / (64u << 10));
  BOOST_TEST(checker.mismatches == 0u, "first mismatch at byte " << checker.first_mismatch);
}
