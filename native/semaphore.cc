// POSIX named semaphores. wait() blocks on a waiter thread owned by the semaphore object (never
// the libuv pool, whose few threads would otherwise be tied up by long waits): the thread calls
// sem_timedwait in short slices so cancelWait()/close() take effect within one slice, and
// reports back to the JS thread through a uv_async_t that settles the promise.
#include <fcntl.h>
#include <semaphore.h>
#include <time.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include "common.h"

namespace plexus {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kSlice = std::chrono::milliseconds(50);

class Semaphore : public Napi::ObjectWrap<Semaphore>, public EnvResource {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Semaphore",
                       {
                           InstanceMethod<&Semaphore::Post>("post"),
                           InstanceMethod<&Semaphore::TryWait>("tryWait"),
                           InstanceMethod<&Semaphore::Wait>("wait"),
                           InstanceMethod<&Semaphore::CancelWait>("cancelWait"),
                           InstanceMethod<&Semaphore::GetValue>("value"),
                           InstanceMethod<&Semaphore::Close>("close"),
                       });
  }

  // Constructed only by semOpen, with the sem_t* as an External.
  explicit Semaphore(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<Semaphore>(info), EnvResource(GetData(info.Env())) {
    if (!info[0].IsExternal() || !info[1].IsString()) ThrowArgument(info.Env(), "Semaphore: use semOpen()");
    sem_ = info[0].As<Napi::External<sem_t>>().Data();
    name_ = info[1].As<Napi::String>().Utf8Value();
  }

  ~Semaphore() override { Shutdown(nullptr); }

  void Teardown() override { Shutdown(nullptr); }

 private:
  // ---- JS methods -------------------------------------------------------------------------
  Napi::Value Post(const Napi::CallbackInfo& info) {
    CheckOpen(info.Env());
    if (sem_post(sem_) == 0) return Napi::Boolean::New(info.Env(), true);
    if (errno == EOVERFLOW) return Napi::Boolean::New(info.Env(), false);
    ThrowErrno(info.Env(), "sem_post", name_);
  }

  Napi::Value TryWait(const Napi::CallbackInfo& info) {
    CheckOpen(info.Env());
    return Napi::Boolean::New(info.Env(), TryOnce(info.Env()));
  }

  Napi::Value Wait(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckOpen(env);
    if (!info[0].IsNumber()) ThrowArgument(env, "Semaphore.wait: timeoutMs must be a number");
    double timeout = info[0].As<Napi::Number>().DoubleValue();
    if (!(timeout >= 0)) ThrowArgument(env, "Semaphore.wait: timeoutMs must be >= 0");
    if (waiting_) ThrowArgument(env, "Semaphore.wait: a wait is already pending on this semaphore");

    napi_deferred deferred;
    napi_value promise;
    if (napi_create_promise(env, &deferred, &promise) != napi_ok) ThrowSystem(env, "napi_create_promise", ENOMEM);
    bool acquired = TryOnce(env);
    if (acquired || timeout == 0) {
      napi_resolve_deferred(env, deferred, Napi::Boolean::New(env, acquired));
      return Napi::Value(env, promise);
    }
    StartThread(env);
    deferred_ = deferred;
    waiting_ = true;
    Ref();  // the promise must settle even if the semaphore object becomes unreachable
    uv_ref(reinterpret_cast<uv_handle_t*>(async_));
    {
      std::lock_guard<std::mutex> lock(mutex_);
      requested_ = true;
      cancel_ = false;
      infinite_ = !std::isfinite(timeout) || timeout > 1e12;
      deadline_ = infinite_ ? Clock::time_point::max()
                            : Clock::now() + std::chrono::microseconds(static_cast<int64_t>(timeout * 1000));
    }
    cv_.notify_one();
    return Napi::Value(env, promise);
  }

  void CancelWait(const Napi::CallbackInfo& /*info*/) {
    if (waiting_) cancel_ = true;
  }

  Napi::Value GetValue(const Napi::CallbackInfo& info) {
    CheckOpen(info.Env());
    int value = 0;
    if (sem_getvalue(sem_, &value) != 0) ThrowErrno(info.Env(), "sem_getvalue", name_);
    return Napi::Number::New(info.Env(), value);
  }

  void Close(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Shutdown(&env);
  }

  // ---- helpers ------------------------------------------------------------------------------
  void CheckOpen(Napi::Env env) {
    if (sem_ == nullptr) ThrowArgument(env, "Semaphore is closed");
  }

  bool TryOnce(Napi::Env env) {
    int r;
    while ((r = sem_trywait(sem_)) != 0 && errno == EINTR) {
    }
    if (r == 0) return true;
    if (errno == EAGAIN) return false;
    ThrowErrno(env, "sem_trywait", name_);
  }

  void StartThread(Napi::Env env) {
    if (thread_.joinable()) return;
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok) ThrowSystem(env, "napi_get_uv_event_loop", EINVAL);
    auto* async = new uv_async_t;
    int r = uv_async_init(loop, async, OnAsync);
    if (r != 0) {
      delete async;
      ThrowSystem(env, "uv_async_init", -r, name_);
    }
    async->data = this;
    uv_unref(reinterpret_cast<uv_handle_t*>(async));  // referenced only while a wait is pending
    async_ = async;
    context_.emplace(env, "PlexusSemaphoreWait");
    thread_ = std::thread(&Semaphore::Run, this);
  }

  // Waiter thread: one wait request at a time until asked to quit.
  void Run() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      cv_.wait(lock, [this] { return requested_ || quit_; });
      if (quit_) return;
      requested_ = false;
      Clock::time_point deadline = deadline_;
      bool infinite = infinite_;
      lock.unlock();
      int result = WaitSlices(deadline, infinite);
      lock.lock();
      result_ = result;
      done_ = true;
      uv_async_send(async_);  // async_ is closed only after this thread is joined
    }
  }

  // 1 acquired, 0 timed out or cancelled, -errno on failure.
  int WaitSlices(Clock::time_point deadline, bool infinite) {
    for (;;) {
      if (cancel_) return 0;
      Clock::time_point now = Clock::now();
      if (!infinite && now >= deadline) return 0;
      auto slice = infinite ? Clock::duration(kSlice) : std::min<Clock::duration>(kSlice, deadline - now);
      timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);  // sem_timedwait takes an absolute CLOCK_REALTIME time
      int64_t ns = ts.tv_nsec + std::chrono::duration_cast<std::chrono::nanoseconds>(slice).count();
      ts.tv_sec += static_cast<time_t>(ns / 1000000000);
      ts.tv_nsec = static_cast<long>(ns % 1000000000);
      if (sem_timedwait(sem_, &ts) == 0) return 1;
      if (errno != EINTR && errno != ETIMEDOUT) return -errno;
    }
  }

  static void OnAsync(uv_async_t* handle) {
    auto* self = static_cast<Semaphore*>(handle->data);
    int result;
    {
      std::lock_guard<std::mutex> lock(self->mutex_);
      if (!self->done_) return;
      self->done_ = false;
      result = self->result_;
    }
    // Raw N-API scopes: in a worker being terminated they fail instead of aborting the process.
    napi_env env = self->Env();
    napi_handle_scope scope;
    if (napi_open_handle_scope(env, &scope) != napi_ok) return;
    napi_value resource;
    napi_callback_scope callbackScope = nullptr;
    // A callback scope so promise reactions and nextTick run when we return to the loop.
    if (napi_create_object(env, &resource) == napi_ok) napi_open_callback_scope(env, resource, *self->context_, &callbackScope);
    self->Settle(env, result);
    if (callbackScope != nullptr) napi_close_callback_scope(env, callbackScope);
    napi_close_handle_scope(env, scope);
  }

  // Settles the pending wait's promise (JS thread, JavaScript allowed).
  void Settle(Napi::Env env, int result) {
    if (!waiting_) return;
    waiting_ = false;
    uv_unref(reinterpret_cast<uv_handle_t*>(async_));
    napi_deferred deferred = deferred_;
    deferred_ = nullptr;
    Unref();
    // Raw calls: they fail quietly (instead of aborting) when JavaScript cannot run.
    napi_value value;
    if (result >= 0) {
      if (napi_get_boolean(env, result == 1, &value) == napi_ok) napi_resolve_deferred(env, deferred, value);
      return;
    }
    try {
      napi_reject_deferred(env, deferred, MakeSystemError(env, "sem_timedwait", -result, name_));
    } catch (const Napi::Error&) {
      // the error could not be built (JavaScript cannot run): nobody is left to tell
    }
  }

  // Stops the thread, settles a pending wait (when `env` is given, i.e. JavaScript may run),
  // closes the uv_async_t and the semaphore. Idempotent.
  void Shutdown(Napi::Env* env) {
    if (sem_ == nullptr) return;
    if (thread_.joinable()) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        quit_ = true;
        cancel_ = true;
      }
      cv_.notify_one();
      thread_.join();  // at most one wait slice
    }
    if (waiting_ && env != nullptr) {
      // The thread may have acquired the semaphore just before stopping: report it.
      int result = done_ ? result_ : 0;
      done_ = false;
      Settle(*env, result);
    }
    if (async_ != nullptr) {
      if (data_ != nullptr) data_->CloseHandle(async_);
      async_ = nullptr;
    }
    sem_close(sem_);
    sem_ = nullptr;
  }

  sem_t* sem_ = nullptr;
  std::string name_;

  // JS-thread state.
  bool waiting_ = false;
  napi_deferred deferred_ = nullptr;
  std::optional<Napi::AsyncContext> context_;
  uv_async_t* async_ = nullptr;
  std::thread thread_;

  // Shared with the waiter thread (under mutex_, except the atomic cancel flag).
  std::mutex mutex_;
  std::condition_variable cv_;
  bool requested_ = false;
  bool quit_ = false;
  bool infinite_ = false;
  Clock::time_point deadline_;
  bool done_ = false;
  int result_ = 0;
  std::atomic<bool> cancel_{false};
};

Napi::Value SemOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = ArgIpcName(info, 0, "semOpen: name");
  bool create = ArgBool(info, 1, "semOpen: create");
  sem_t* sem;
  if (create) {
    auto mode = static_cast<mode_t>(ArgInteger(info, 2, "semOpen: mode", 0, 07777));
    auto initial = static_cast<unsigned>(ArgInteger(info, 3, "semOpen: initial", 0, SEM_VALUE_MAX));
    sem = sem_open(name.c_str(), O_CREAT | O_EXCL, mode, initial);
  } else {
    sem = sem_open(name.c_str(), 0);
  }
  if (sem == SEM_FAILED) ThrowErrno(env, "sem_open", name);
  try {
    return GetData(env)->semaphoreConstructor.New({Napi::External<sem_t>::New(env, sem), Napi::String::New(env, name)});
  } catch (...) {
    sem_close(sem);
    throw;
  }
}

Napi::Value SemUnlink(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = ArgIpcName(info, 0, "semUnlink: name");
  if (sem_unlink(name.c_str()) == 0) return Napi::Boolean::New(env, true);
  if (errno == ENOENT) return Napi::Boolean::New(env, false);
  ThrowErrno(env, "sem_unlink", name);
}

}  // namespace

void InitSemaphore(Napi::Env env, Napi::Object exports) {
  GetData(env)->semaphoreConstructor = Napi::Persistent(Semaphore::Define(env));
  exports.Set("semOpen", Napi::Function::New(env, SemOpen, "semOpen"));
  exports.Set("semUnlink", Napi::Function::New(env, SemUnlink, "semUnlink"));
}

}  // namespace plexus
