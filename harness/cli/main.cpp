// attnbench: benchmark and verify attention kernels.
//   attnbench list                      algorithms, variants, implementations and their support
//   attnbench run [axes] [--check] ...  a checked, timed sweep written to CSV
//   attnbench suite NAME                a named sweep, measured vs published
//   attnbench compare BASE NEW          the regression gate (exit 1 on a regression)
// Bad input prints one line naming the parameter and exits 2.
#include <cstdio>
#include <exception>

#include <CLI/CLI.hpp>

#include "commands.h"
#include "errors.h"

int main(int argc, char** argv) {
  CLI::App app{"attnbench: a benchmarking and verification harness for attention kernels"};
  app.require_subcommand(1);
  int exit_code = 0;
  attnbench::cli::add_list_command(app, &exit_code);
  attnbench::cli::add_run_command(app, &exit_code);
  attnbench::cli::add_suite_command(app, &exit_code);
  attnbench::cli::add_compare_command(app, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "attnbench: error: %s\n", e.what());
    return 2;
  } catch (const attnbench::UsageError& e) {
    std::fprintf(stderr, "attnbench: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "attnbench: fatal: %s\n", e.what());
    return 3;
  }
  return exit_code;
}
