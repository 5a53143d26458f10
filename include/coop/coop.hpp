// SPDX-License-Identifier: BSL-1.0
// The whole of coop: #include <coop/coop.hpp>.
#pragma once

#include <coop/cooperative_task.hpp>
#include <coop/cooperator.hpp>
#include <coop/cooperator_options.hpp>
#include <coop/cooperator_pool.hpp>
#include <coop/default_cooperator.hpp>
#include <coop/error.hpp>
#include <coop/result_task.hpp>
#include <coop/stats.hpp>
#include <coop/step.hpp>
#include <coop/steps.hpp>
#include <coop/task_options.hpp>
#include <coop/task_state.hpp>
#include <coop/version.hpp>
