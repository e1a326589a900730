// Shared declarations of the Plexus addon: per-environment state, error helpers, argument
// readers and the bridge between N-API values and V8 handles.
#pragma once

#include <napi.h>
#include <uv.h>
#include <v8.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <unordered_set>

namespace plexus {

// ---- napi_value <-> v8::Local -------------------------------------------------------------
// In Node a napi_value is a v8::Local<v8::Value> reinterpreted; the raw V8 API is needed for
// SharedArrayBuffers over foreign memory (not expressible in N-API on Node 20).
static_assert(sizeof(napi_value) == sizeof(v8::Local<v8::Value>), "napi_value is a v8::Local");

inline v8::Local<v8::Value> ToV8(napi_value value) {
  v8::Local<v8::Value> local;
  std::memcpy(static_cast<void*>(&local), &value, sizeof(value));
  return local;
}

inline napi_value FromV8(v8::Local<v8::Value> local) {
  napi_value value;
  std::memcpy(&value, static_cast<void*>(&local), sizeof(value));
  return value;
}

// ---- per-environment state ------------------------------------------------------------------
struct AddonData;

// Something owning libuv handles or threads that must be released when the environment (the
// main thread or a worker) is torn down, before its event loop is closed.
class EnvResource {
 public:
  explicit EnvResource(AddonData* data);
  virtual ~EnvResource();
  EnvResource(const EnvResource&) = delete;
  EnvResource& operator=(const EnvResource&) = delete;

  // Releases everything; called once on environment teardown (JavaScript cannot run).
  virtual void Teardown() = 0;

 protected:
  AddonData* data_;  // null once the environment's state is gone

  friend struct AddonData;
};

// Instance data of one environment (napi_set_instance_data).
struct AddonData {
  Napi::FunctionReference errorFactory;
  Napi::FunctionReference semaphoreConstructor;
  std::unordered_set<EnvResource*> resources;
  napi_async_cleanup_hook_handle cleanupHandle = nullptr;
  size_t closingHandles = 0;  // uv_close calls whose callback has not run yet
  bool tearingDown = false;

  ~AddonData();

  // uv_close() that keeps environment teardown waiting until the close callback ran, then
  // frees the handle (allocated with `new T`).
  template <class T>
  void CloseHandle(T* handle) {
    ++closingHandles;
    auto* h = reinterpret_cast<uv_handle_t*>(handle);
    h->data = this;
    uv_close(h, [](uv_handle_t* closed) {
      auto* self = static_cast<AddonData*>(closed->data);
      delete reinterpret_cast<T*>(closed);
      self->HandleClosed();
    });
  }

  void HandleClosed();
  void BeginTeardown(napi_async_cleanup_hook_handle handle);
  void MaybeFinishTeardown();
};

AddonData* GetData(Napi::Env env);

// ---- file descriptors owned by an environment (fds.cc) ---------------------------------------
// Records `fd` as owned by the calling environment: closed at its teardown unless closed before.
int OwnFd(Napi::Env env, int fd);
// Forgets and closes `fd`; returns 0 or the errno of close() (EINTR counts as closed).
int CloseFd(int fd);
// Closes every fd `data`'s environment still owns (environment teardown).
void CloseOwnedFds(AddonData* data);
// How many fds `data`'s environment owns (tests: nothing leaks).
size_t OwnedFdCount(AddonData* data);

// ---- errors --------------------------------------------------------------------------------
// Throws (as a C++ Napi::Error) the error the JS factory builds for a failed system call.
[[noreturn]] void ThrowSystem(Napi::Env env, const char* syscall, int err, const std::string& detail = "");
// Same, with errno taken from `errno`.
[[noreturn]] void ThrowErrno(Napi::Env env, const char* syscall, const std::string& detail = "");
// Throws an invalid-argument error.
[[noreturn]] void ThrowArgument(Napi::Env env, const std::string& message);
// Builds (without throwing) the error object for a failed system call.
Napi::Value MakeSystemError(Napi::Env env, const char* syscall, int err, const std::string& detail = "");

// After a JS call made from the event loop failed: reports the exception it threw as an
// uncaught exception, or does nothing when JavaScript cannot run (a worker being terminated).
void ReportCallbackException(napi_env env);
// "ENOENT" for ENOENT, "E<n>" when unknown.
std::string ErrnoName(int err);
// A number as JavaScript would print it for integers (no UB for huge values).
std::string FormatNumber(double value);

// ---- argument readers (throw an invalid-argument error) ----------------------------------
// An integer-valued number within [min, max].
int64_t ArgInteger(const Napi::CallbackInfo& info, size_t index, const char* what, int64_t min, int64_t max);
// A file descriptor: an integer in [0, INT32_MAX].
int ArgFd(const Napi::CallbackInfo& info, size_t index, const char* what);
// A strictly positive byte size (at most 2^53 - 1).
size_t ArgSize(const Napi::CallbackInfo& info, size_t index, const char* what);
// A string without NUL bytes (unless allowNul).
std::string ArgString(const Napi::CallbackInfo& info, size_t index, const char* what, bool allowNul = false);
// A POSIX IPC name: "/" followed by at least one character, no other "/".
std::string ArgIpcName(const Napi::CallbackInfo& info, size_t index, const char* what);
bool ArgBool(const Napi::CallbackInfo& info, size_t index, const char* what);

// ---- module parts (each file registers its functions) ---------------------------------------
void InitErrors(Napi::Env env, Napi::Object exports);
void InitSegment(Napi::Env env, Napi::Object exports);
void InitWake(Napi::Env env, Napi::Object exports);
void InitFdPass(Napi::Env env, Napi::Object exports);
void InitLiveness(Napi::Env env, Napi::Object exports);
void InitCopy(Napi::Env env, Napi::Object exports);
void InitSemaphore(Napi::Env env, Napi::Object exports);
void InitTcp(Napi::Env env, Napi::Object exports);
void InitMemory(Napi::Env env, Napi::Object exports);

}  // namespace plexus
