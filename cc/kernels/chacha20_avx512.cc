// Compiled with -mavx512f (and friends): 16 ChaCha20 blocks per step.
#include "chacha20_impl.h"
namespace tfe_accel {
void PrgBlocksAvx512(const u32 key[8], u64 block0, u32 round, std::size_t nblocks, u32* out) {
  chacha_impl::PrgBlocksImpl<16>(key, block0, round, nblocks, out);
}
}  // namespace tfe_accel
