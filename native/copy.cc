// copy(target, offset, source): memcpy from any ArrayBufferView into a SharedArrayBuffer. On the
// hot path, so it is a raw N-API callback using V8 directly: no allocation, no materialising of
// small on-heap typed arrays (ArrayBufferView::CopyContents reads them in place).
#include <cmath>

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

napi_value Copy(napi_env env, napi_callback_info cbinfo) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, cbinfo, &argc, argv, nullptr, nullptr) != napi_ok) return nullptr;
  v8::Local<v8::Value> targetValue = ToV8(argv[0]);
  v8::Local<v8::Value> offsetValue = ToV8(argv[1]);
  v8::Local<v8::Value> sourceValue = ToV8(argv[2]);
  if (!targetValue->IsSharedArrayBuffer()) return Fail(env, "copy: target must be a SharedArrayBuffer");
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

  v8::Local<v8::SharedArrayBuffer> target = targetValue.As<v8::SharedArrayBuffer>();
  v8::Local<v8::ArrayBufferView> source = sourceValue.As<v8::ArrayBufferView>();
  size_t capacity = target->ByteLength();
  size_t length = source->ByteLength();
  if (offset > static_cast<double>(capacity) || length > capacity - static_cast<size_t>(offset)) {
    return Fail(env, "copy: " + std::to_string(length) + " bytes at offset " + FormatNumber(offset) +
                         " exceed the target's " + std::to_string(capacity) + " bytes");
  }
  if (length > 0) source->CopyContents(static_cast<uint8_t*>(target->Data()) + static_cast<size_t>(offset), length);
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
