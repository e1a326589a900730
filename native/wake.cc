// Wake-ups: eventfds, and Watcher, a uv_poll handle on the environment's own event loop that
// calls a JS callback with make-callback semantics when an fd becomes readable or hangs up.
//
// The watcher polls its own duplicate of the fd (closed by close()), so the caller may close its
// fd at any time without libuv ending up watching whatever file reuses that number.
//
// Lifetime: the JS object is held strongly while the watcher is started (so a started watcher
// keeps calling back even if unreachable). The uv_poll_t is heap-allocated and freed by its
// close callback, independently of the C++ object, so close() may happen from a finalizer;
// on environment teardown (e.g. a worker exiting) AddonData closes it and waits for the close.
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>

#include "common.h"

namespace plexus {

namespace {

Napi::Value EventfdCreate(const Napi::CallbackInfo& info) {
  int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) ThrowErrno(info.Env(), "eventfd");
  return Napi::Number::New(info.Env(), OwnFd(info.Env(), fd));
}

void EventfdSignal(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "eventfdSignal: fd");
  const uint64_t one = 1;
  for (;;) {
    if (write(fd, &one, sizeof(one)) == static_cast<ssize_t>(sizeof(one))) return;
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return;  // counter saturated: the reader is awake anyway
    ThrowErrno(info.Env(), "write", "eventfd " + std::to_string(fd));
  }
}

Napi::Value EventfdDrain(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "eventfdDrain: fd");
  uint64_t value = 0;
  for (;;) {
    if (read(fd, &value, sizeof(value)) == static_cast<ssize_t>(sizeof(value))) {
      return Napi::Number::New(info.Env(), static_cast<double>(value));
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return Napi::Number::New(info.Env(), 0);
    ThrowErrno(info.Env(), "read", "eventfd " + std::to_string(fd));
  }
}

Napi::Value TimerfdCreate(const Napi::CallbackInfo& info) {
  int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (fd < 0) ThrowErrno(info.Env(), "timerfd_create");
  return Napi::Number::New(info.Env(), OwnFd(info.Env(), fd));
}

// timerfdArm(fd, delayNs): the timer expires once, delayNs from now (relative, one shot); 0 or
// less disarms it. Unlike the event loop's timers (whole milliseconds), it has the kernel's
// high-resolution timers' precision. Reading the fd (eventfdDrain) consumes the expiration.
void TimerfdArm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "timerfdArm: fd");
  if (!info[1].IsNumber()) ThrowArgument(env, "timerfdArm: delayNs must be a number");
  double ns = info[1].As<Napi::Number>().DoubleValue();
  if (std::isnan(ns)) ThrowArgument(env, "timerfdArm: delayNs must not be NaN");
  struct itimerspec spec = {};
  if (ns > 0) {
    if (ns > 1e18) ns = 1e18;  // ~31 years: clamps what no timespec holds
    auto whole = static_cast<int64_t>(ns);
    if (whole < 1) whole = 1;  // a zero it_value would disarm
    spec.it_value.tv_sec = static_cast<time_t>(whole / 1000000000);
    spec.it_value.tv_nsec = static_cast<long>(whole % 1000000000);
  }
  if (timerfd_settime(fd, 0, &spec, nullptr) != 0) ThrowErrno(env, "timerfd_settime", "fd " + std::to_string(fd));
}

class Watcher : public Napi::ObjectWrap<Watcher>, public EnvResource {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Watcher",
                       {
                           InstanceMethod<&Watcher::Start>("start"),
                           InstanceMethod<&Watcher::Stop>("stop"),
                           InstanceMethod<&Watcher::RefHandle>("ref"),
                           InstanceMethod<&Watcher::UnrefHandle>("unref"),
                           InstanceMethod<&Watcher::Close>("close"),
                       });
  }

  explicit Watcher(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<Watcher>(info), EnvResource(GetData(info.Env())) {
    Napi::Env env = info.Env();
    if (!info.IsConstructCall()) ThrowArgument(env, "Watcher must be called with new");
    int fd = ArgFd(info, 0, "Watcher: fd");
    if (!info[1].IsFunction()) ThrowArgument(env, "Watcher: callback must be a function");
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    context_ = std::make_unique<Napi::AsyncContext>(env, "PlexusWatcher", info.This().As<Napi::Object>());

    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok) ThrowSystem(env, "napi_get_uv_event_loop", EINVAL);
    // Watch a private duplicate: closing (and reusing) the caller's fd number can then never
    // make libuv unregister or watch an unrelated file.
    fd_ = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (fd_ < 0) ThrowErrno(env, "fcntl", "F_DUPFD_CLOEXEC, fd " + std::to_string(fd));
    auto* handle = new uv_poll_t;
    int r = uv_poll_init(loop, handle, fd_);
    if (r != 0) {
      delete handle;  // never initialised: nothing to close
      close(fd_);
      fd_ = -1;
      ThrowSystem(env, "uv_poll_init", -r, "fd " + std::to_string(fd));
    }
    handle->data = this;
    handle_ = handle;
    try {
      StartPolling(env);
    } catch (...) {
      Release();  // the destructor does not run when a constructor throws
      throw;
    }
  }

  ~Watcher() override { Release(); }

  void Teardown() override { Release(); }

 private:
  void StartPolling(Napi::Env env) {
    if (handle_ == nullptr) ThrowArgument(env, "Watcher is closed");
    if (started_) return;
    int r = uv_poll_start(handle_, UV_READABLE | UV_DISCONNECT, OnPoll);
    if (r != 0) ThrowSystem(env, "uv_poll_start", -r, "fd " + std::to_string(fd_));
    started_ = true;
    Ref();  // a started watcher must outlive its last JS reference
  }

  void StopPolling() {
    if (!started_) return;
    uv_poll_stop(handle_);
    started_ = false;
    Unref();
  }

  // Stops and closes the handle (idempotent). Safe from a finalizer and from teardown.
  void Release() {
    if (handle_ == nullptr) return;
    if (started_) {
      uv_poll_stop(handle_);
      started_ = false;
      // The persistent self-reference is dropped with the object; no Unref() needed here.
    }
    uv_poll_t* handle = handle_;
    handle_ = nullptr;
    if (data_ != nullptr) data_->CloseHandle(handle);  // unregisters the fd from epoll at once
    close(fd_);
    fd_ = -1;
  }

  static void OnPoll(uv_poll_t* handle, int status, int events) {
    auto* self = static_cast<Watcher*>(handle->data);
    int bits = 0;
    if (status < 0) {
      bits = 2;
    } else {
      if (events & UV_READABLE) bits |= 1;
      if (events & UV_DISCONNECT) bits |= 2;
    }
    if (bits == 0) return;
    // Raw N-API on purpose: in a worker being terminated JavaScript cannot run, the call fails,
    // and node-addon-api's wrappers would turn that failure into a fatal error.
    napi_env env = self->Env();
    napi_handle_scope scope;
    if (napi_open_handle_scope(env, &scope) != napi_ok) return;
    napi_value receiver;
    napi_value fn;
    napi_value arg;
    napi_value result;
    napi_ref selfRef = static_cast<const Napi::Reference<Napi::Object>&>(*self);
    napi_ref fnRef = self->callback_;
    if (napi_get_reference_value(env, selfRef, &receiver) == napi_ok &&  // keeps the object alive
        napi_get_reference_value(env, fnRef, &fn) == napi_ok && napi_create_int32(env, bits, &arg) == napi_ok &&
        napi_make_callback(env, *self->context_, receiver, fn, 1, &arg, &result) != napi_ok) {
      ReportCallbackException(env);
    }
    napi_close_handle_scope(env, scope);
  }

  void Start(const Napi::CallbackInfo& info) { StartPolling(info.Env()); }

  void Stop(const Napi::CallbackInfo& /*info*/) {
    if (handle_ != nullptr) StopPolling();
  }

  void RefHandle(const Napi::CallbackInfo& /*info*/) {
    if (handle_ != nullptr) uv_ref(reinterpret_cast<uv_handle_t*>(handle_));
  }

  void UnrefHandle(const Napi::CallbackInfo& /*info*/) {
    if (handle_ != nullptr) uv_unref(reinterpret_cast<uv_handle_t*>(handle_));
  }

  void Close(const Napi::CallbackInfo& /*info*/) {
    if (handle_ == nullptr) return;
    StopPolling();
    Release();
    // The callback is a strong reference that usually closes over this object (a peer's
    // callback names the peer, which holds its watcher): keeping it would make a closed
    // watcher, its callback and all they reach a cycle the collector cannot free. OnPoll
    // holds its own handle to the function while it runs, so this is safe from inside it.
    callback_.Reset();
  }

  int fd_ = -1;  // our duplicate of the watched fd, closed with the handle
  uv_poll_t* handle_ = nullptr;
  bool started_ = false;
  Napi::FunctionReference callback_;
  std::unique_ptr<Napi::AsyncContext> context_;
};

}  // namespace

void InitWake(Napi::Env env, Napi::Object exports) {
  exports.Set("eventfdCreate", Napi::Function::New(env, EventfdCreate, "eventfdCreate"));
  exports.Set("eventfdSignal", Napi::Function::New(env, EventfdSignal, "eventfdSignal"));
  exports.Set("eventfdDrain", Napi::Function::New(env, EventfdDrain, "eventfdDrain"));
  exports.Set("timerfdCreate", Napi::Function::New(env, TimerfdCreate, "timerfdCreate"));
  exports.Set("timerfdArm", Napi::Function::New(env, TimerfdArm, "timerfdArm"));
  exports.Set("Watcher", Watcher::Define(env));
}

}  // namespace plexus
