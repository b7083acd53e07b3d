// Eigen views of one (b, h) slice of a row-major [B, H, T, D] tensor.
#pragma once

#include <Eigen/Dense>

#include "core/tensor.h"

namespace attnbench::ref {

using Mat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Vec = Eigen::VectorXd;
using MatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using VecF = Eigen::VectorXf;
using MapMat = Eigen::Map<Mat>;
using MapConstMat = Eigen::Map<const Mat>;

// Slice (b, h) of a [B, H, T, D] tensor as a T x D matrix.
inline MapConstMat slice(const Tensor& t, int64_t b, int64_t h) {
  const int64_t H = t.shape[1], T = t.shape[2], D = t.shape[3];
  return MapConstMat(t.ptr() + ((b * H + h) * T) * D, T, D);
}
inline MapMat slice(Tensor& t, int64_t b, int64_t h) {
  const int64_t H = t.shape[1], T = t.shape[2], D = t.shape[3];
  return MapMat(t.ptr() + ((b * H + h) * T) * D, T, D);
}
// Slice (b, h) of a [B, H, T] tensor as a length-T vector.
inline Eigen::Map<Vec> row_slice(Tensor& t, int64_t b, int64_t h) {
  const int64_t H = t.shape[1], T = t.shape[2];
  return Eigen::Map<Vec>(t.ptr() + (b * H + h) * T, T);
}
inline Eigen::Map<const Vec> row_slice(const Tensor& t, int64_t b, int64_t h) {
  const int64_t H = t.shape[1], T = t.shape[2];
  return Eigen::Map<const Vec>(t.ptr() + (b * H + h) * T, T);
}

}  // namespace attnbench::ref
