// --dump: NPY 1.0 files written by hand round-trip exactly; a dumped point read back re-checks
// with the numerics rule to the same verdict (and a corrupted output fails); numpy, when present,
// loads the files with the same values.
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>

#include <fmt/format.h>

#include "check.h"
#include "common/cli.h"
#include "common/finite_diff.h"
#include "core/algos.h"
#include "core/impl.h"
#include "dump.h"
#include "errors.h"

namespace attnbench {
namespace {

using testing::make_problem;

Tensor iota(std::vector<int64_t> shape, double step) {
  Tensor t(std::move(shape));
  for (std::size_t i = 0; i < t.data.size(); ++i) t.data[i] = step * static_cast<double>(i) - 1.0;
  return t;
}

TEST(Npy, RoundTripsExactlyInF4AndF8) {
  const std::string dir = testing::scratch_dir("npy");
  Tensor f4 = iota({2, 3, 5}, 0.25);  // every value a float: written '<f4'
  f4.data[3] = std::numeric_limits<double>::quiet_NaN();
  const Tensor f8 = iota({7}, 0.1);   // 0.1 steps are not floats: written '<f8'
  const Tensor scalar({}, 3.5);
  const Tensor empty({0, 4});
  for (const auto& [name, t] : std::vector<std::pair<std::string, Tensor>>{{"f4", f4}, {"f8", f8}, {"scalar", scalar}, {"empty", empty}}) {
    const std::string path = dir + "/" + name + ".npy";
    write_npy(path, t);
    const std::string bytes = testing::read_file(path);
    ASSERT_GE(bytes.size(), 10u);
    EXPECT_EQ(bytes.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
    const std::size_t hlen = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    EXPECT_EQ((10 + hlen) % 64, 0u) << "data 64-byte aligned";
    EXPECT_EQ(bytes[10 + hlen - 1], '\n');
    const std::string header = bytes.substr(10, hlen);
    EXPECT_NE(header.find(name == "f8" ? "'descr': '<f8'" : "'descr': '<f4'"), std::string::npos) << header;
    EXPECT_NE(header.find("'fortran_order': False"), std::string::npos) << header;
    const Tensor back = read_npy(path);
    EXPECT_EQ(back.shape, t.shape) << name;
    ASSERT_EQ(back.data.size(), t.data.size()) << name;
    for (std::size_t i = 0; i < t.data.size(); ++i) {
      if (std::isnan(t.data[i])) EXPECT_TRUE(std::isnan(back.data[i]));
      else EXPECT_EQ(back.data[i], t.data[i]) << name << "[" << i << "]";
    }
  }
  EXPECT_NE(testing::read_file(dir + "/f4.npy").find("'shape': (2, 3, 5)"), std::string::npos);
  EXPECT_NE(testing::read_file(dir + "/f8.npy").find("'shape': (7,)"), std::string::npos);
  EXPECT_NE(testing::read_file(dir + "/scalar.npy").find("'shape': ()"), std::string::npos);
}

TEST(Npy, MalformedFilesAreRefusedNamingTheFile) {
  const std::string dir = testing::scratch_dir("npy_bad");
  std::ofstream(dir + "/text.npy") << "not numpy at all";
  write_npy(dir + "/cut.npy", iota({64}, 1.0));
  const std::string full = testing::read_file(dir + "/cut.npy");
  std::ofstream(dir + "/cut.npy", std::ios::binary) << full.substr(0, full.size() - 8);
  write_npy(dir + "/fortran.npy", iota({2, 2}, 1.0));
  std::string fortran = testing::read_file(dir + "/fortran.npy");
  fortran.replace(fortran.find("False"), 5, "True ");
  std::ofstream(dir + "/fortran.npy", std::ios::binary) << fortran;
  for (const char* f : {"text.npy", "cut.npy", "fortran.npy", "absent.npy"}) {
    try {
      read_npy(dir + "/" + f);
      ADD_FAILURE() << f << " was accepted";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(f), std::string::npos) << e.what();
    }
  }
}

TEST(Dump, TagIsOneSafePathComponent) {
  Problem p = make_problem("gated", 2, 4, 63, 63, 16, 24, true, -1, "rwkv6");
  const std::string tag = dump_tag(p, "emul", Pass::bwd, Dtype::bf16);
  EXPECT_EQ(tag.rfind("gated-rwkv6_emul_bwd_bf16_B2_H4_Hkv4_Tq63_Tk63_Dk16_Dv24_causal", 0), 0u) << tag;
  for (char c : tag) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.') << tag;
}

TEST(Dump, AnUnwritableFolderIsBadInputNamingDump) {
  EXPECT_NO_THROW(prepare_dump_dir(testing::scratch_dir("dump_ok") + "/a/b"));
  EXPECT_TRUE(std::filesystem::is_directory(testing::scratch_dir("dump_ok") + "/a/b"));
  for (const std::string bad : {"/proc/attnbench_dump", ""}) {
    try {
      prepare_dump_dir(bad);
      ADD_FAILURE() << "'" << bad << "' accepted";
    } catch (const UsageError& e) {
      EXPECT_EQ(std::string(e.what()).rfind("--dump: ", 0), 0u) << e.what();
    }
  }
}

// Run `impl` on the inputs and return its outputs.
Tensors run_impl(const std::string& name, const Problem& p, Pass pass, Dtype dt, const Tensors& in) {
  const Impl* impl = registry().find(p.algo, name);
  EXPECT_NE(impl, nullptr) << p.algo << "/" << name;
  auto prep = impl->prepare(p, pass, dt, in, PrepareOptions{});
  prep->run();
  return prep->outputs();
}

// A dumped softmax backward (GQA, causal, Tq != Tk) re-checks from the files to the same verdict.
TEST(Dump, APointReadBackRechecksToTheSameVerdict) {
  const std::string dir = testing::scratch_dir("dump");
  std::filesystem::remove_all(dir + "/points");
  const Problem p = make_problem("softmax", 1, 4, 13, 21, 16, 8, true, 2);
  const Dtype dt = Dtype::bf16;
  const Pass pass = Pass::bwd;
  const Tensors in = make_inputs(p, pass, dt, 7);
  const Tensors ref = run_impl("ref", p, pass, dt, in);
  const Tensors emul = run_impl("emul", p, pass, dt, in);
  // The implementation under test: emul with a small perturbation in dq, so that err differs
  // from err_base and the comparison below is not trivially equal.
  Tensors x = emul;
  x.at("dq").data[5] += 1e-4;
  const Verdict v = check_outputs(p, pass, dt, kDefaultK, x, ref, emul);
  ASSERT_TRUE(v.pass) << v.summary();

  const std::string tag = dump_tag(p, "emul", pass, dt);
  dump_point(dir + "/points", tag, in, x, &ref, &emul);
  const DumpedPoint d = read_point(dir + "/points", tag);
  EXPECT_EQ(d.inputs.size(), in.size());
  for (const char* n : {"q", "k", "v", "do"}) EXPECT_TRUE(d.inputs.count(n)) << n;
  for (const char* n : {"dq", "dk", "dv"}) {
    EXPECT_TRUE(d.outputs.count(n)) << n;
    EXPECT_TRUE(d.oracle.count(n)) << n;
    EXPECT_TRUE(d.base.count(n)) << n;
  }
  for (const auto& [n, t] : in) EXPECT_EQ(d.inputs.at(n).data, t.data) << n;  // bf16 inputs survive '<f4'
  for (const auto& [n, t] : ref) EXPECT_EQ(d.oracle.at(n).data, t.data) << n;  // the fp64 oracle survives '<f8'

  const Verdict back = check_outputs(p, pass, dt, kDefaultK, d.outputs, d.oracle, d.base);
  EXPECT_EQ(back.pass, v.pass);
  ASSERT_EQ(back.tensors.size(), v.tensors.size());
  for (std::size_t i = 0; i < v.tensors.size(); ++i) {
    EXPECT_EQ(back.tensors[i].err, v.tensors[i].err) << v.tensors[i].tensor;
    EXPECT_EQ(back.tensors[i].err_base, v.tensors[i].err_base) << v.tensors[i].tensor;
    EXPECT_EQ(back.tensors[i].floor, v.tensors[i].floor) << v.tensors[i].tensor;
  }
  // The rule on the files catches a bad output: corrupt dk in the dump and re-check.
  Tensor dk = d.outputs.at("dk");
  dk.data[0] += 0.5;
  write_npy(dir + "/points/" + tag + "/output.dk.npy", dk);
  const DumpedPoint bad = read_point(dir + "/points", tag);
  const Verdict vb = check_outputs(p, pass, dt, kDefaultK, bad.outputs, bad.oracle, bad.base);
  EXPECT_FALSE(vb.pass);
  EXPECT_EQ(vb.worst().tensor, "dk");
}

TEST(Dump, NumpyLoadsTheFilesWithTheSameValues) {
  std::string python;
  for (const char* cand : {"/usr/bin/python3", "python3"}) {
    if (std::system(fmt::format("{} -c 'import numpy' >/dev/null 2>&1", cand).c_str()) == 0) {
      python = cand;
      break;
    }
  }
  if (python.empty()) GTEST_SKIP() << "no python3 with numpy (README setup installs python3-matplotlib, which brings it)";
  const std::string dir = testing::scratch_dir("dump_np");
  const Problem p = make_problem("linear", 2, 3, 17, 17, 16, 24, true);
  const Tensors in = make_inputs(p, Pass::fwd, Dtype::f16, 3);
  const Tensors ref = run_impl("ref", p, Pass::fwd, Dtype::f16, in);
  dump_point(dir, "pt", in, ref, &ref);
  const std::string out = dir + "/numpy.txt";
  const std::string cmd = fmt::format(
      "{2} -c \"import numpy as np; a = np.load('{0}/pt/input.q.npy'); o = np.load('{0}/pt/oracle.o.npy'); "
      "print(a.dtype, a.shape, repr(float(a.astype(np.float64).sum()))); print(o.dtype, o.shape, repr(float(o.sum())))\" > {1}",
      dir, out, python);
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  double q_sum = 0, o_sum = 0;
  for (double v : in.at("q").data) q_sum += v;
  for (double v : ref.at("o").data) o_sum += v;
  const std::string text = testing::read_file(out);
  EXPECT_NE(text.find(fmt::format("float32 (2, 3, 17, 16) ")), std::string::npos) << text;
  EXPECT_NE(text.find(fmt::format("float64 (2, 3, 17, 24) ")), std::string::npos) << text;
  // numpy's pairwise summation differs from ours in the last bits only.
  double np_q = 0, np_o = 0;
  ASSERT_EQ(std::sscanf(text.c_str(), "float32 (2, 3, 17, 16) %lf\nfloat64 (2, 3, 17, 24) %lf", &np_q, &np_o), 2) << text;
  EXPECT_NEAR(np_q, q_sum, 1e-9 * (1 + std::abs(q_sum)));
  EXPECT_NEAR(np_o, o_sum, 1e-9 * (1 + std::abs(o_sum)));
}

}  // namespace
}  // namespace attnbench
