// The instruction-set extensions a build of hol's CPU kernels was compiled for (header-only).
#pragma once

#include <string>
#include <vector>

namespace hol {

// The instruction-set extensions this build was compiled for (-march=native on the building machine).
inline std::vector<std::string> instruction_sets() {
  std::vector<std::string> sets;
#ifdef __SSE4_2__
  sets.push_back("SSE4.2");
#endif
#ifdef __AVX2__
  sets.push_back("AVX2");
#endif
#ifdef __FMA__
  sets.push_back("FMA");
#endif
#ifdef __AVX512F__
  sets.push_back("AVX-512F");
#endif
#ifdef __AVX512BW__
  sets.push_back("AVX-512BW");
#endif
#ifdef __AVX512VL__
  sets.push_back("AVX-512VL");
#endif
#ifdef __AVX512BF16__
  sets.push_back("AVX-512BF16");
#endif
#ifdef __AVX512FP16__
  sets.push_back("AVX-512FP16");
#endif
#ifdef __ARM_NEON
  sets.push_back("NEON");
#endif
  return sets;
}

}  // namespace hol
