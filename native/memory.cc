// retainFreedMemory(trimBytes, mmapBytes): glibc's allocator, told to keep freed memory.
//
// Every message a socket delivers lands in a buffer of its own, freed by the garbage collector
// in batches. With glibc's starting thresholds (128 KiB) each batch shrinks the heap back to
// the kernel and the next batch faults every page in again, zeroed: at 64 KiB messages that
// was a seventh of a receiving process's CPU. glibc raises both thresholds by itself once a
// process frees one large mmap()ed block (mmap threshold = its size up to 32 MiB, trim
// threshold = twice that); this puts it in that state from the start. Elsewhere (musl, macOS)
// it does nothing and returns false.
#include <cstdlib>  // defines __GLIBC__ on glibc

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "common.h"

namespace plexus {

namespace {

Napi::Value RetainFreedMemory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  // glibc takes ints; its own dynamic mmap threshold stops at 32 MiB on 64-bit hosts.
  int64_t trim = ArgInteger(info, 0, "trimBytes", 0, INT32_MAX);
  int64_t mmapThreshold = ArgInteger(info, 1, "mmapBytes", 0, 32 << 20);
#if defined(__GLIBC__)
  // glibc refuses mmap thresholds above its own maximum: 32 MiB with 64-bit longs, 512 KiB else.
  const int64_t glibcMax = sizeof(long) >= 8 ? (32 << 20) : (512 << 10);
  if (mmapThreshold > glibcMax) mmapThreshold = glibcMax;
  // Setting either threshold turns glibc's own adjustment off: set the trim threshold only
  // once the mmap threshold is in place, so a refusal leaves glibc as it was.
  bool ok = mallopt(M_MMAP_THRESHOLD, static_cast<int>(mmapThreshold)) == 1 && mallopt(M_TRIM_THRESHOLD, static_cast<int>(trim)) == 1;
  return Napi::Boolean::New(env, ok);
#else
  (void)trim;
  (void)mmapThreshold;
  return Napi::Boolean::New(env, false);
#endif
}

}  // namespace

void InitMemory(Napi::Env env, Napi::Object exports) {
  exports.Set("retainFreedMemory", Napi::Function::New(env, RetainFreedMemory, "retainFreedMemory"));
}

}  // namespace plexus
