// The subcommands of `attnbench`. Each adds itself to the app; its callback stores the process
// exit code in *exit_code (0 ok, 1 a check failed or a row errored, 2 bad input).
#pragma once

#include <CLI/CLI.hpp>

namespace attnbench::cli {

void add_list_command(CLI::App& app, int* exit_code);
void add_run_command(CLI::App& app, int* exit_code);
void add_suite_command(CLI::App& app, int* exit_code);    // cmd_suite.cpp
void add_compare_command(CLI::App& app, int* exit_code);  // cmd_compare.cpp

}  // namespace attnbench::cli
