// A host simulator of the CUDA execution model, just enough to run the linear-family kernels on a
// CPU without a GPU: every thread of a block is a fiber (ucontext), __syncthreads and the
// warp-collective operations (__shfl_xor_sync, __syncwarp, ldmatrix, mma.sync) are barriers, and
// cp.async copies at once. It checks the fragment layouts, indexing and bounds of the kernels on
// small shapes against the CPU references; it says nothing about speed, and the scheduling (run
// each fiber to its next barrier, in order) finds only those races that this order exposes.
//
// Use: compile a kernel header with g++ -DATTNBENCH_LIN_SIM (see sim/sim_main.cpp), then
//   sim::launch(grid, block, smem_bytes, [&] { kernel<...>(args); });
#pragma once

#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __launch_bounds__
#define __global__
#define __device__
#define __host__
#define __shared__ static
#define __launch_bounds__(...)

using std::max;
using std::min;

namespace sim {

struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
};

struct Barrier {
  int count = 0, expected = 0;
  uint64_t gen = 0;
};

struct Fiber {
  ucontext_t ctx;
  std::vector<char> stack;
  bool done = false;
  unsigned tid = 0;
};

// A wgmma shared-memory operand: its first element and the strides (linear_family_wgmma.cuh).
struct WgDesc {
  const unsigned char* p = nullptr;
  int lbo = 0, sbo = 0;
};

// Per-lane slots of the warp collectives.
struct Lane {
  float acc[64] = {};  // wgmma: this thread's accumulator fragment
  WgDesc da, db;       // wgmma: the operands' descriptors
  const void* addr = nullptr;
  uint32_t in[6] = {};
  float fin[4] = {};
  uint32_t out[4] = {};
  float fout[4] = {};
};

struct State {
  Dim3 grid, block, block_idx;
  std::vector<Fiber> fibers;
  int cur = -1;
  ucontext_t sched;
  Barrier block_bar;
  std::vector<Barrier> warp_bar;
  std::vector<Barrier> wg_bar;     // warpgroups (wgmma)
  std::vector<Barrier> named_bar;  // bar.sync id, n (ids 1..15)
  std::vector<Lane> lanes;
  std::vector<unsigned char> smem;
  std::function<void()> body;
};

inline State& S() {
  static State s;
  return s;
}

inline Dim3 thread_idx() {
  Dim3 d;
  d.x = S().fibers[S().cur].tid;
  return d;
}

inline void yield() {
  State& s = S();
  swapcontext(&s.fibers[s.cur].ctx, &s.sched);
}

inline void arrive(Barrier& b) {
  if (++b.count == b.expected) {
    b.count = 0;
    ++b.gen;
    return;
  }
  const uint64_t g = b.gen;
  long spins = 0;
  while (b.gen == g) {
    if (++spins > 100000000L) throw std::runtime_error("sim: deadlock at a barrier");
    yield();
  }
}

inline void syncthreads() { arrive(S().block_bar); }
inline void named_barrier(int id, int n) {
  Barrier& b = S().named_bar.at(id);
  b.expected = n;
  arrive(b);
}
// bar.arrive: counts this thread toward the barrier's n without waiting.
inline void named_barrier_arrive(int id, int n) {
  Barrier& b = S().named_bar.at(id);
  b.expected = n;
  if (++b.count == b.expected) b.count = 0, ++b.gen;
}
inline int lane_id() { return static_cast<int>(S().fibers[S().cur].tid % 32); }
inline int warp_id() { return static_cast<int>(S().fibers[S().cur].tid / 32); }
inline Lane& my_lane() { return S().lanes[S().fibers[S().cur].tid]; }

// All lanes of the warp arrive; the last one runs compute(first lane index) for all of them.
template <class F>
void warp_collective(F compute) {
  Barrier& b = S().warp_bar[warp_id()];
  if (b.count + 1 == b.expected) compute(warp_id() * 32);
  arrive(b);
}

inline void syncwarp() { warp_collective([](int) {}); }

// All 128 threads of the warpgroup arrive; the last one runs compute(first thread index).
template <class F>
void warpgroup_collective(F compute) {
  Barrier& b = S().wg_bar[warp_id() / 4];
  if (b.count + 1 == b.expected) compute(warp_id() / 4 * 128);
  arrive(b);
}

inline float shfl_xor(float v, int mask) {
  my_lane().fin[0] = v;
  warp_collective([mask](int w0) {
    for (int l = 0; l < 32; ++l) S().lanes[w0 + l].fout[0] = S().lanes[w0 + (l ^ mask)].fin[0];
  });
  return my_lane().fout[0];
}

// A 32-bit word through the float slot, bit for bit.
inline uint32_t shfl_xor(uint32_t v, int mask) {
  float f, r;
  std::memcpy(&f, &v, 4);
  my_lane().fin[0] = f;
  warp_collective([mask](int w0) {
    for (int l = 0; l < 32; ++l) S().lanes[w0 + l].fout[0] = S().lanes[w0 + (l ^ mask)].fin[0];
  });
  r = my_lane().fout[0];
  std::memcpy(&v, &r, 4);
  return v;
}

inline float shfl_idx(float v, int src) {
  my_lane().fin[0] = v;
  my_lane().fin[1] = static_cast<float>(src);  // the source lane
  warp_collective([](int w0) {
    float got[32];
    for (int l = 0; l < 32; ++l) got[l] = S().lanes[w0 + (static_cast<int>(S().lanes[w0 + l].fin[1]) & 31)].fin[0];
    for (int l = 0; l < 32; ++l) S().lanes[w0 + l].fout[0] = got[l];
  });
  return my_lane().fout[0];
}

inline float shfl_up(float v, int off) {
  my_lane().fin[0] = v;
  warp_collective([off](int w0) {
    for (int l = 0; l < 32; ++l) S().lanes[w0 + l].fout[0] = S().lanes[w0 + (l >= off ? l - off : l)].fin[0];
  });
  return my_lane().fout[0];
}

inline uint16_t u16_at(const void* row, int c) { return static_cast<const uint16_t*>(row)[c]; }

// ldmatrix.m8n8.x4(.trans): lane 8m + r gives the address of row r of matrix m.
inline void ldmatrix_x4(uint32_t (&r)[4], const void* p, bool trans) {
  my_lane().addr = p;
  warp_collective([trans](int w0) {
    for (int l = 0; l < 32; ++l) {
      for (int m = 0; m < 4; ++m) {
        uint16_t lo, hi;
        if (!trans) {
          const void* row = S().lanes[w0 + 8 * m + l / 4].addr;
          lo = u16_at(row, 2 * (l % 4));
          hi = u16_at(row, 2 * (l % 4) + 1);
        } else {
          lo = u16_at(S().lanes[w0 + 8 * m + 2 * (l % 4)].addr, l / 4);
          hi = u16_at(S().lanes[w0 + 8 * m + 2 * (l % 4) + 1].addr, l / 4);
        }
        S().lanes[w0 + l].out[m] = uint32_t(lo) | (uint32_t(hi) << 16);
      }
    }
  });
  for (int m = 0; m < 4; ++m) r[m] = my_lane().out[m];
}

// stmatrix.m8n8.x4(.trans): ldmatrix_x4's inverse (lane 8m + r gives the address of row r of
// matrix m; register m of lane l holds row l / 4, columns 2 (l % 4) (+1), or with .trans that
// element pair goes to column l / 4 of rows 2 (l % 4) (+1)).
inline void stmatrix_x4(const uint32_t (&r)[4], void* p, bool trans) {
  my_lane().addr = p;
  for (int m = 0; m < 4; ++m) my_lane().in[m] = r[m];
  warp_collective([trans](int w0) {
    for (int l = 0; l < 32; ++l) {
      for (int m = 0; m < 4; ++m) {
        const uint32_t x = S().lanes[w0 + l].in[m];
        const uint16_t lo = uint16_t(x & 0xffffu), hi = uint16_t(x >> 16);
        if (!trans) {
          uint16_t* row = static_cast<uint16_t*>(const_cast<void*>(S().lanes[w0 + 8 * m + l / 4].addr));
          row[2 * (l % 4)] = lo, row[2 * (l % 4) + 1] = hi;
        } else {
          static_cast<uint16_t*>(const_cast<void*>(S().lanes[w0 + 8 * m + 2 * (l % 4)].addr))[l / 4] = lo;
          static_cast<uint16_t*>(const_cast<void*>(S().lanes[w0 + 8 * m + 2 * (l % 4) + 1].addr))[l / 4] = hi;
        }
      }
    }
  });
}

// ldmatrix.m8n8.x2: the first two matrices of x4 (lanes 0..15 give the addresses).
inline void ldmatrix_x2(uint32_t (&r)[2], const void* p) {
  uint32_t r4[4];
  ldmatrix_x4(r4, p, false);  // lanes 16..31 pass addresses too; matrices 2, 3 are dropped
  r[0] = r4[0], r[1] = r4[1];
}

template <class T>
inline float half_to_f32(uint16_t bits) {
  T x;
  std::memcpy(&x, &bits, 2);
  if constexpr (std::is_same_v<T, __half>) return __half2float(x);
  else return __bfloat162float(x);
}

// One warp's mma.sync m16n8kK, D = A B + C in fp32 (C and D: c0, c1 (g, 2t, 2t + 1), c2, c3
// (g + 8, ...)): decode(L, g, t, A, B) writes lane L's operand fragments (L.in[0..3] of A,
// L.in[4..5] of B) into the 16 x K and K x 8 matrices.
template <int K, class Decode>
inline void warp_mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1, Decode decode) {
  Lane& me = my_lane();
  for (int i = 0; i < 4; ++i) me.in[i] = a[i], me.fin[i] = c[i];
  me.in[4] = b0, me.in[5] = b1;
  warp_collective([decode](int w0) {
    float A[16][K], B[K][8], C[16][8];
    for (int l = 0; l < 32; ++l) {
      const Lane& L = S().lanes[w0 + l];
      const int g = l / 4, t = l % 4;
      decode(L, g, t, A, B);
      C[g][2 * t] = L.fin[0], C[g][2 * t + 1] = L.fin[1];
      C[g + 8][2 * t] = L.fin[2], C[g + 8][2 * t + 1] = L.fin[3];
    }
    for (int l = 0; l < 32; ++l) {
      Lane& L = S().lanes[w0 + l];
      const int g = l / 4, t = l % 4;
      const int rows[4] = {g, g, g + 8, g + 8}, cols[4] = {2 * t, 2 * t + 1, 2 * t, 2 * t + 1};
      for (int e = 0; e < 4; ++e) {
        float s = C[rows[e]][cols[e]];
        for (int k = 0; k < K; ++k) s += A[rows[e]][k] * B[k][cols[e]];
        L.fout[e] = s;
      }
    }
  });
  for (int i = 0; i < 4; ++i) c[i] = me.fout[i];
}

// mma.sync.m16n8k16.row.col.f32.{bf16,f16}: D = A B + C.
template <class T>
inline void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  warp_mma<16>(c, a, b0, b1, [](const Lane& L, int g, int t, float (&A)[16][16], float (&B)[16][8]) {
    auto lo = [](uint32_t v) { return half_to_f32<T>(uint16_t(v & 0xffff)); };
    auto hi = [](uint32_t v) { return half_to_f32<T>(uint16_t(v >> 16)); };
    A[g][2 * t] = lo(L.in[0]), A[g][2 * t + 1] = hi(L.in[0]);
    A[g + 8][2 * t] = lo(L.in[1]), A[g + 8][2 * t + 1] = hi(L.in[1]);
    A[g][2 * t + 8] = lo(L.in[2]), A[g][2 * t + 9] = hi(L.in[2]);
    A[g + 8][2 * t + 8] = lo(L.in[3]), A[g + 8][2 * t + 9] = hi(L.in[3]);
    B[2 * t][g] = lo(L.in[4]), B[2 * t + 1][g] = hi(L.in[4]);
    B[2 * t + 8][g] = lo(L.in[5]), B[2 * t + 9][g] = hi(L.in[5]);
  });
}

// cvt.rna.tf32.f32: x rounded to tf32 (10 mantissa bits, to nearest, ties away from zero), as
// the fp32 bit pattern with the 13 low bits cleared (finite x).
inline uint32_t tf32_rna(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return (u + 0x1000u) & 0xffffe000u;
}

// mma.sync.m16n8k8.row.col.f32.tf32.tf32.f32: D = A B + C, A 16 x 8 (a0 (g, t), a1 (g + 8, t),
// a2 (g, t + 4), a3 (g + 8, t + 4)), B 8 x 8 (b0 (t, g), b1 (t + 4, g)), C as m16n8k16's.
inline void mma1688_tf32(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  warp_mma<8>(c, a, b0, b1, [](const Lane& L, int g, int t, float (&A)[16][8], float (&B)[8][8]) {
    auto f = [](uint32_t v) {
      float x;
      std::memcpy(&x, &v, 4);
      return x;
    };
    A[g][t] = f(L.in[0]), A[g + 8][t] = f(L.in[1]), A[g][t + 4] = f(L.in[2]), A[g + 8][t + 4] = f(L.in[3]);
    B[t][g] = f(L.in[4]), B[t + 4][g] = f(L.in[5]);
  });
}

// Element (mn, k) of a wgmma operand in shared memory with the 128-byte swizzle (applied to the
// address, as the hardware does; the kernels' tiles are 1024-byte aligned on the host too).
inline uint16_t wg_elem(const WgDesc& d, bool mn_major, int mn, int k) {
  uintptr_t a = reinterpret_cast<uintptr_t>(d.p);
  if (!mn_major) a += uintptr_t((mn / 8) * d.sbo + (mn % 8) * 128 + k * 2);
  else a += uintptr_t((mn / 64) * d.lbo + (mn % 64) * 2 + (k / 8) * d.sbo + (k % 8) * 128);
  a ^= ((a >> 7) & 7) << 4;
  return *reinterpret_cast<const uint16_t*>(a);
}

// wgmma.mma_async.m64nNk16 (f32 += {bf16,f16} products), run synchronously: D = A B + D, A from
// the threads' registers (a != nullptr, the mma.sync A layout of rows 16w..) or from da.
template <class T, int N>
inline void wgmma(float (&d)[N / 2], const uint32_t* a, WgDesc da, bool trans_a, WgDesc db, bool trans_b) {
  Lane& me = my_lane();
  for (int i = 0; i < N / 2; ++i) me.acc[i] = d[i];
  if (a) {
    for (int i = 0; i < 4; ++i) me.in[i] = a[i];
  }
  me.da = da, me.db = db;
  const bool areg = a != nullptr;
  warpgroup_collective([areg, trans_a, trans_b](int t0) {
    static float A[64][16], B[16][N], C[64][N];
    const WgDesc da = S().lanes[t0].da, db = S().lanes[t0].db;
    auto f = [](uint16_t bits) { return half_to_f32<T>(bits); };
    for (int m = 0; m < 64; ++m)
      for (int k = 0; k < 16; ++k) A[m][k] = areg ? 0.0f : f(wg_elem(da, trans_a, m, k));
    for (int k = 0; k < 16; ++k)
      for (int n = 0; n < N; ++n) B[k][n] = f(wg_elem(db, trans_b, n, k));
    for (int l = 0; l < 128; ++l) {
      const Lane& L = S().lanes[t0 + l];
      const int w = l / 32, g = (l % 32) / 4, t = l % 4, r = 16 * w + g;
      if (areg) {
        auto lo = [&](uint32_t v) { return f(uint16_t(v & 0xffff)); };
        auto hi = [&](uint32_t v) { return f(uint16_t(v >> 16)); };
        A[r][2 * t] = lo(L.in[0]), A[r][2 * t + 1] = hi(L.in[0]);
        A[r + 8][2 * t] = lo(L.in[1]), A[r + 8][2 * t + 1] = hi(L.in[1]);
        A[r][2 * t + 8] = lo(L.in[2]), A[r][2 * t + 9] = hi(L.in[2]);
        A[r + 8][2 * t + 8] = lo(L.in[3]), A[r + 8][2 * t + 9] = hi(L.in[3]);
      }
      for (int i = 0; i < N / 8; ++i)
        for (int e = 0; e < 4; ++e) C[r + 8 * (e / 2)][8 * i + 2 * t + e % 2] = L.acc[4 * i + e];
    }
    for (int m = 0; m < 64; ++m)
      for (int n = 0; n < N; ++n) {
        float s = C[m][n];
        for (int k = 0; k < 16; ++k) s += A[m][k] * B[k][n];
        C[m][n] = s;
      }
    for (int l = 0; l < 128; ++l) {
      Lane& L = S().lanes[t0 + l];
      const int w = l / 32, g = (l % 32) / 4, t = l % 4, r = 16 * w + g;
      for (int i = 0; i < N / 8; ++i)
        for (int e = 0; e < 4; ++e) L.acc[4 * i + e] = C[r + 8 * (e / 2)][8 * i + 2 * t + e % 2];
    }
  });
  for (int i = 0; i < N / 2; ++i) d[i] = me.acc[i];
}

inline void fiber_entry() {
  State& s = S();
  s.body();
  Fiber& f = s.fibers[s.cur];
  f.done = true;
  // An exited thread no longer takes part in barriers.
  auto leave = [](Barrier& b) {
    if (--b.expected > 0 && b.count == b.expected) {
      b.count = 0;
      ++b.gen;
    }
  };
  leave(s.block_bar);
  leave(s.warp_bar[f.tid / 32]);
  leave(s.wg_bar[f.tid / 128]);
  swapcontext(&f.ctx, &s.sched);
}

// Run body() as every thread of every block of the grid, one block at a time.
inline void launch(Dim3 grid, Dim3 block, size_t smem_bytes, std::function<void()> body) {
  State& s = S();
  const unsigned nthreads = block.x;
  if (nthreads % 32 != 0) throw std::runtime_error("sim: block size must be a multiple of 32");
  s.grid = grid;
  s.block = block;
  s.body = std::move(body);
  s.lanes.assign(nthreads, Lane{});
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        s.block_idx = {bx, by, bz};
        s.smem.assign(smem_bytes + 16, 0xAB);  // garbage, as on a GPU
        s.fibers.assign(nthreads, Fiber{});
        s.block_bar = Barrier{0, static_cast<int>(nthreads), 0};
        s.warp_bar.assign(nthreads / 32, Barrier{0, 32, 0});
        s.wg_bar.assign((nthreads + 127) / 128, Barrier{0, 128, 0});
        if (nthreads % 128 != 0) s.wg_bar.back().expected = static_cast<int>(nthreads % 128);
        s.named_bar.assign(16, Barrier{0, 0, 0});
        for (unsigned t = 0; t < nthreads; ++t) {
          Fiber& f = s.fibers[t];
          f.tid = t;
          f.stack.resize(256 * 1024);
          getcontext(&f.ctx);
          f.ctx.uc_stack.ss_sp = f.stack.data();
          f.ctx.uc_stack.ss_size = f.stack.size();
          f.ctx.uc_link = &s.sched;
          makecontext(&f.ctx, fiber_entry, 0);
        }
        for (;;) {
          bool all_done = true;
          for (unsigned t = 0; t < nthreads; ++t) {
            if (s.fibers[t].done) continue;
            all_done = false;
            s.cur = static_cast<int>(t);
            swapcontext(&s.sched, &s.fibers[t].ctx);
          }
          if (all_done) break;
        }
        s.cur = -1;
      }
}

}  // namespace sim

#define threadIdx (::sim::thread_idx())
#define blockIdx (::sim::S().block_idx)
#define blockDim (::sim::S().block)
#define gridDim (::sim::S().grid)
#define __syncthreads() ::sim::syncthreads()
#define __syncwarp(...) ::sim::syncwarp()
#define __shfl_xor_sync(mask, v, off) ::sim::shfl_xor((v), (off))
#define __shfl_up_sync(mask, v, off) ::sim::shfl_up((v), (off))
#define __shfl_sync(mask, v, src) ::sim::shfl_idx((v), (src))
#define __expf expf
