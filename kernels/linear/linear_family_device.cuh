// What every linear-family kernel header includes first: the storage types, and the two things
// that differ between a CUDA build and the host simulator (sim/lin_sim.h, compiled with
// -DATTNBENCH_LIN_SIM): the dynamic shared-memory window and the CUDA built-in names.
#pragma once

#ifdef ATTNBENCH_LIN_SIM
#include "sim/lin_sim.h"
#endif

#include <cstdint>

#include "storage.cuh"

#ifdef ATTNBENCH_LIN_SIM
#define LIN_DYN_SMEM(T, name) T* name = reinterpret_cast<T*>(::sim::S().smem.data())
#else
#define LIN_DYN_SMEM(T, name)                                   \
  extern __shared__ __align__(128) unsigned char lin_dyn_smem_[]; \
  T* name = reinterpret_cast<T*>(lin_dyn_smem_)
#endif
