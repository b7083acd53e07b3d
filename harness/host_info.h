// Facts about the machine and the build, recorded in every CSV row.
#pragma once

#include <string>

namespace attnbench {

std::string cpu_model();            // "AMD EPYC 7B13 (2 threads)" from /proc/cpuinfo
std::string git_commit();           // "abc123def456" or "abc123def456-dirty"; "unknown" outside git
std::string utc_timestamp();        // "2026-11-20T22:08:00Z"
std::string run_name();             // "20261120-220800", for results/<run>/
double host_copy_bandwidth_gbps();  // memcpy of 256 MB, bytes read + written; measured once

}  // namespace attnbench
