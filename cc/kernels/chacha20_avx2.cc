// Compiled with -mavx2: 8 ChaCha20 blocks per step.
#include "chacha20_impl.h"
namespace tfe_accel {
void PrgBlocksAvx2(const u32 key[8], u64 block0, u32 round, std::size_t nblocks, u32* out) {
  chacha_impl::PrgBlocksImpl<8>(key, block0, round, nblocks, out);
}
}  // namespace tfe_accel
