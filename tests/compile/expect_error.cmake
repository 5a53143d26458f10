# SPDX-License-Identifier: BSL-1.0
# Compiles SOURCE with CXX and passes when the compilation fails with exactly one error,
# whose line holds the text after "// expect: " in SOURCE: a common mistake must give one
# readable error at the call site, and no follow-on errors.
file(STRINGS "${SOURCE}" expect_line REGEX "^// expect: ")
string(REGEX REPLACE "^// expect: " "" expected "${expect_line}")
string(REPLACE ";" "," expected "${expected}")
execute_process(COMMAND "${CXX}" -std=c++20 -fsyntax-only "-I${INCLUDE}" "-I${BOOST_INCLUDE}" "${SOURCE}"
  RESULT_VARIABLE result ERROR_VARIABLE output OUTPUT_VARIABLE output_out)
if(result EQUAL 0)
  message(FATAL_ERROR "${SOURCE} compiled; it must not")
endif()
string(REPLACE ";" "," output "${output}")  # a CMake list is ;-separated
string(REGEX MATCHALL "[^\n]*error:[^\n]*" errors "${output}")
list(LENGTH errors count)
if(NOT count EQUAL 1)
  message(FATAL_ERROR "${count} errors, not 1:\n${output}")
endif()
string(FIND "${errors}" "${expected}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "the error does not say \"${expected}\":\n${errors}")
endif()
