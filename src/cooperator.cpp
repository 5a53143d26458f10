// SPDX-License-Identifier: BSL-1.0
#include <coop/cooperator.hpp>

namespace coop {

cooperator::cooperator(const asio::any_io_executor& ex, cooperator_options options)
    : core_(detail::make_cooperator_core(ex, std::move(options))) {}

cooperator::~cooperator() { core_->stop(); }

void cooperator::start() { core_->start(); }
void cooperator::stop() { core_->stop(); }

}  // namespace coop
