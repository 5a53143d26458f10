// SPDX-License-Identifier: BSL-1.0
#include <coop/default_cooperator.hpp>

#include "core/context_service.hpp"

namespace coop {

cooperator& default_cooperator(const asio::any_io_executor& ex) {
  return detail::context_service::of(ex).default_cooperator(ex);
}

}  // namespace coop
