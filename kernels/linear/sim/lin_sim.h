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

// Per-lane slots of the warp collectives.
struct Lane {
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

inline float shfl_xor(float v, int mask) {
  my_lane().fin[0] = v;
  warp_collective([mask](int w0) {
    for (int l = 0; l < 32; ++l) S().lanes[w0 + l].fout[0] = S().lanes[w0 + (l ^ mask)].fin[0];
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

// mma.sync.m16n8k16.row.col.f32.{bf16,f16}: D = A B + C.
template <class T>
inline void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  Lane& me = my_lane();
  for (int i = 0; i < 4; ++i) me.in[i] = a[i], me.fin[i] = c[i];
  me.in[4] = b0, me.in[5] = b1;
  warp_collective([](int w0) {
    float A[16][16], B[16][8], C[16][8];
    for (int l = 0; l < 32; ++l) {
      const Lane& L = S().lanes[w0 + l];
      const int g = l / 4, t = l % 4;
      auto lo = [](uint32_t v) { return half_to_f32<T>(uint16_t(v & 0xffff)); };
      auto hi = [](uint32_t v) { return half_to_f32<T>(uint16_t(v >> 16)); };
      A[g][2 * t] = lo(L.in[0]), A[g][2 * t + 1] = hi(L.in[0]);
      A[g + 8][2 * t] = lo(L.in[1]), A[g + 8][2 * t + 1] = hi(L.in[1]);
      A[g][2 * t + 8] = lo(L.in[2]), A[g][2 * t + 9] = hi(L.in[2]);
      A[g + 8][2 * t + 8] = lo(L.in[3]), A[g + 8][2 * t + 9] = hi(L.in[3]);
      B[2 * t][g] = lo(L.in[4]), B[2 * t + 1][g] = hi(L.in[4]);
      B[2 * t + 8][g] = lo(L.in[5]), B[2 * t + 9][g] = hi(L.in[5]);
      C[g][2 * t] = L.fin[0], C[g][2 * t + 1] = L.fin[1];
      C[g + 8][2 * t] = L.fin[2], C[g + 8][2 * t + 1] = L.fin[3];
    }
    for (int l = 0; l < 32; ++l) {
      Lane& L = S().lanes[w0 + l];
      const int g = l / 4, t = l % 4;
      const int rows[4] = {g, g, g + 8, g + 8}, cols[4] = {2 * t, 2 * t + 1, 2 * t, 2 * t + 1};
      for (int e = 0; e < 4; ++e) {
        float s = C[rows[e]][cols[e]];
        for (int k = 0; k < 16; ++k) s += A[rows[e]][k] * B[k][cols[e]];
        L.fout[e] = s;
      }
    }
  });
  for (int i = 0; i < 4; ++i) c[i] = me.fout[i];
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
#define __expf expf
