// copy(target, offset, source): memcpy from any ArrayBufferView into a SharedArrayBuffer or an
// ArrayBuffer (the two must not overlap). Also the fast way out of shared memory: V8 copies from a
// SharedArrayBuffer with relaxed atomic loads (`set()` from a ring runs at ~1/15 of memcpy's
// speed). On the hot path, so it is a raw N-API callback using V8 directly: no allocation, no
// materialising of small on-heap typed arrays (ArrayBufferView::CopyContents reads them in place).
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(__SSE2__)
#include <emmintrin.h>
#define PLEXUS_STREAMING_STORES 1
#endif

#include "common.h"

namespace plexus {

namespace {

napi_value Fail(napi_env env, const std::string& message) {
  try {
    ThrowArgument(Napi::Env(env), message);
  } catch (const Napi::Error& e) {
    e.ThrowAsJavaScriptException();
  }
  return nullptr;
}

// A copy this large into a target this large (far beyond any cache) goes round the cache with
// non-temporal stores: the target lines are not read first (no read-for-ownership) and the copy
// does not evict what the caches hold. Measured on a 2-vCPU EPYC VM: a 3.1 MB copy into a cold
// position of a 256 MiB segment takes ~160 us instead of ~310-390 us. Small targets (rings that
// stay in the cache, where a reader reads right after) keep memcpy.
constexpr size_t kStreamMinBytes = 256 << 10;
constexpr size_t kStreamMinTarget = 64 << 20;

void StreamingCopy(uint8_t* dst, const uint8_t* src, size_t n) {
#ifdef PLEXUS_STREAMING_STORES
  size_t head = (16 - (reinterpret_cast<uintptr_t>(dst) & 15)) & 15;
  if (head > n) head = n;
  std::memcpy(dst, src, head);
  size_t i = head;
  for (; i + 64 <= n; i += 64) {
    __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 16));
    __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 32));
    __m128i d = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 48));
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i), a);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 16), b);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 32), c);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 48), d);
  }
  _mm_sfence();  // the stores are visible before anything published after this copy
  std::memcpy(dst + i, src + i, n - i);
#else
  std::memcpy(dst, src, n);
#endif
}

napi_value Copy(napi_env env, napi_callback_info cbinfo) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, cbinfo, &argc, argv, nullptr, nullptr) != napi_ok) return nullptr;
  v8::Local<v8::Value> targetValue = ToV8(argv[0]);
  v8::Local<v8::Value> offsetValue = ToV8(argv[1]);
  v8::Local<v8::Value> sourceValue = ToV8(argv[2]);
  if (!targetValue->IsSharedArrayBuffer() && !targetValue->IsArrayBuffer()) {
    return Fail(env, "copy: target must be a SharedArrayBuffer or an ArrayBuffer");
  }
  if (!sourceValue->IsArrayBufferView()) return Fail(env, "copy: source must be an ArrayBufferView");

  double offset;
  if (offsetValue->IsUint32()) {
    offset = offsetValue.As<v8::Uint32>()->Value();
  } else if (offsetValue->IsNumber()) {
    offset = offsetValue.As<v8::Number>()->Value();
    if (!(offset >= 0) || std::trunc(offset) != offset) {
      return Fail(env, "copy: offset must be an integer >= 0");
    }
  } else {
    return Fail(env, "copy: offset must be a number");
  }

  uint8_t* base;
  size_t capacity;
  if (targetValue->IsSharedArrayBuffer()) {
    v8::Local<v8::SharedArrayBuffer> target = targetValue.As<v8::SharedArrayBuffer>();
    base = static_cast<uint8_t*>(target->Data());
    capacity = target->ByteLength();
  } else {
    v8::Local<v8::ArrayBuffer> target = targetValue.As<v8::ArrayBuffer>();
    base = static_cast<uint8_t*>(target->Data());
    capacity = target->ByteLength();  // 0 once detached
  }
  v8::Local<v8::ArrayBufferView> source = sourceValue.As<v8::ArrayBufferView>();
  size_t length = source->ByteLength();
  if (offset > static_cast<double>(capacity) || length > capacity - static_cast<size_t>(offset)) {
    return Fail(env, "copy: " + std::to_string(length) + " bytes at offset " + FormatNumber(offset) +
                         " exceed the target's " + std::to_string(capacity) + " bytes");
  }
  if (length == 0) return nullptr;
  uint8_t* dst = base + static_cast<size_t>(offset);
  if (length >= kStreamMinBytes && capacity >= kStreamMinTarget) {
    // Large views are never on the V8 heap: their bytes are in the buffer's backing store.
    const uint8_t* src = static_cast<const uint8_t*>(source->Buffer()->Data()) + source->ByteOffset();
    StreamingCopy(dst, src, length);
  } else if (length > 0) {
    source->CopyContents(dst, length);
  }
  return nullptr;  // undefined
}

}  // namespace

void InitCopy(Napi::Env env, Napi::Object exports) {
  napi_value fn;
  napi_status status = napi_create_function(env, "copy", NAPI_AUTO_LENGTH, Copy, nullptr, &fn);
  NAPI_THROW_IF_FAILED_VOID(env, status);
  exports.Set("copy", Napi::Value(env, fn));
}

}  // namespace plexus
