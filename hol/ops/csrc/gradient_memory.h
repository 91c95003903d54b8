// Memory for weight-sized gradients of hol's CPU kernels (header-only; include it in one translation unit per
// extension: the cache below is per extension).
//
// A fresh weight-sized buffer is first touched by the kernel that fills it: with 4 KiB pages that costs one page
// fault per 4 KiB, as much time as the writes themselves, and the kernel zeroes every fresh page. Training loops
// set gradients to None at every step, so a weight gradient is fresh at every backward. Large gradient buffers
// therefore come from a small cache: a gradient tensor's memory, once freed, waits for the next backward of the
// same size (at most CACHE_BYTES stay idle; beyond that, buffers are freed); fresh buffers ask for transparent
// huge pages (one fault per 2 MiB). Buffers under CACHED_FROM bytes come from torch as usual.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/accumulate.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>

#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#ifdef __linux__
#include <sys/mman.h>
#endif

namespace hol {

constexpr uintptr_t HUGE_PAGE = uintptr_t(1) << 21;

// Transparent huge pages for the 2 MiB-aligned part of a buffer not touched yet (a no-op where unsupported).
inline void advise_huge_pages(void* data, int64_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + uintptr_t(bytes)) & ~(HUGE_PAGE - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)data;
  (void)bytes;
#endif
}

class GradientCache {
 public:
  static constexpr size_t CACHED_FROM = size_t(8) << 20;
  static constexpr size_t CACHE_BYTES = size_t(512) << 20;

  static GradientCache& instance() {
    static GradientCache* cache = new GradientCache();  // never destroyed: tensors may outlive static teardown
    return *cache;
  }

  void* take(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto found = idle_.find(bytes);
      if (found != idle_.end()) {
        void* data = found->second;
        idle_.erase(found);
        idle_bytes_ -= bytes;
        return data;
      }
    }
    void* data = std::aligned_alloc(HUGE_PAGE, (bytes + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1));
    TORCH_CHECK(data != nullptr, "out of memory for a weight gradient of ", bytes, " bytes");
    advise_huge_pages(data, int64_t(bytes));
    return data;
  }

  void give_back(void* data, size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (idle_bytes_ + bytes <= CACHE_BYTES) {
        idle_.emplace(bytes, data);
        idle_bytes_ += bytes;
        return;
      }
    }
    std::free(data);
  }

 private:
  std::mutex mutex_;
  std::multimap<size_t, void*> idle_;
  size_t idle_bytes_ = 0;
};

// An uninitialized gradient of ``shape`` (cached memory when large, see GradientCache).
inline at::Tensor empty_gradient(at::IntArrayRef shape, const at::TensorOptions& options) {
  const size_t bytes = size_t(c10::multiply_integers(shape)) * options.dtype().itemsize();
  if (bytes < GradientCache::CACHED_FROM) {
    auto gradient = at::empty(shape, options);
    advise_huge_pages(gradient.data_ptr(), int64_t(bytes));
    return gradient;
  }
  void* data = GradientCache::instance().take(bytes);
  return at::from_blob(data, shape, [bytes](void* p) { GradientCache::instance().give_back(p, bytes); }, options);
}

// An uninitialized tensor shaped like ``w`` for its gradient.
inline at::Tensor empty_gradient(const at::Tensor& w) { return empty_gradient(w.sizes(), w.options()); }

}  // namespace hol
