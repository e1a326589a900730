// Errors: the addon throws what the JS factory (setErrorFactory) builds, or a plain Error with
// a `code` when no factory is installed. Also the argument readers that validate input.
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>

#include "common.h"

namespace plexus {

std::string ErrnoName(int err) {
  switch (err) {
#define PLEXUS_ERRNO(name) \
  case name:               \
    return #name;
    PLEXUS_ERRNO(EPERM)
    PLEXUS_ERRNO(ENOENT)
    PLEXUS_ERRNO(ESRCH)
    PLEXUS_ERRNO(EINTR)
    PLEXUS_ERRNO(EIO)
    PLEXUS_ERRNO(ENXIO)
    PLEXUS_ERRNO(E2BIG)
    PLEXUS_ERRNO(EBADF)
    PLEXUS_ERRNO(ECHILD)
    PLEXUS_ERRNO(EAGAIN)
    PLEXUS_ERRNO(ENOMEM)
    PLEXUS_ERRNO(EACCES)
    PLEXUS_ERRNO(EFAULT)
    PLEXUS_ERRNO(EBUSY)
    PLEXUS_ERRNO(EEXIST)
    PLEXUS_ERRNO(EXDEV)
    PLEXUS_ERRNO(ENODEV)
    PLEXUS_ERRNO(ENOTDIR)
    PLEXUS_ERRNO(EISDIR)
    PLEXUS_ERRNO(EINVAL)
    PLEXUS_ERRNO(ENFILE)
    PLEXUS_ERRNO(EMFILE)
    PLEXUS_ERRNO(EFBIG)
    PLEXUS_ERRNO(ENOSPC)
    PLEXUS_ERRNO(ESPIPE)
    PLEXUS_ERRNO(EROFS)
    PLEXUS_ERRNO(EPIPE)
    PLEXUS_ERRNO(ERANGE)
    PLEXUS_ERRNO(ENAMETOOLONG)
    PLEXUS_ERRNO(ENOSYS)
    PLEXUS_ERRNO(ENOTEMPTY)
    PLEXUS_ERRNO(ELOOP)
    PLEXUS_ERRNO(EOVERFLOW)
    PLEXUS_ERRNO(ENOTSOCK)
    PLEXUS_ERRNO(EMSGSIZE)
    PLEXUS_ERRNO(EOPNOTSUPP)
    PLEXUS_ERRNO(EADDRINUSE)
    PLEXUS_ERRNO(EADDRNOTAVAIL)
    PLEXUS_ERRNO(ECONNABORTED)
    PLEXUS_ERRNO(ECONNRESET)
    PLEXUS_ERRNO(ENOTCONN)
    PLEXUS_ERRNO(ETIMEDOUT)
    PLEXUS_ERRNO(ECONNREFUSED)
    PLEXUS_ERRNO(EINPROGRESS)
    PLEXUS_ERRNO(EDQUOT)
#undef PLEXUS_ERRNO
    default:
      return "E" + std::to_string(err);
  }
}

std::string FormatNumber(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.17g", value);
  return buffer;
}

static Napi::Value MakeError(Napi::Env env, const char* kind, const std::string& message, const char* syscall,
                             int err, const std::string& detail) {
  AddonData* data = GetData(env);
  if (data != nullptr && !data->errorFactory.IsEmpty()) {
    return data->errorFactory.Call({
        Napi::String::New(env, kind),
        Napi::String::New(env, message),
        Napi::String::New(env, syscall),
        Napi::Number::New(env, err),
        Napi::String::New(env, err == 0 ? std::string() : ErrnoName(err)),
        Napi::String::New(env, detail),
    });
  }
  // No factory: a plain Error carrying the same facts.
  bool argument = std::strcmp(kind, "argument") == 0;
  std::string text = argument ? message : std::string(syscall) + (detail.empty() ? "" : " (" + detail + ")") + ": " +
                                              message + " [" + ErrnoName(err) + "]";
  Napi::Error error = Napi::Error::New(env, text);
  if (argument) {
    error.Set("code", "ERR_PLEXUS_INVALID_ARGUMENT");
  } else {
    error.Set("code", err == ENOSPC ? "ERR_PLEXUS_NO_SPACE" : "ERR_PLEXUS_SYSTEM");
    error.Set("errno", Napi::Number::New(env, err));
    error.Set("errnoName", ErrnoName(err));
    error.Set("syscall", syscall);
  }
  return error.Value();
}

Napi::Value MakeSystemError(Napi::Env env, const char* syscall, int err, const std::string& detail) {
  char buffer[256];
  const char* text = strerror_r(err, buffer, sizeof(buffer));  // GNU variant: returns the text
  return MakeError(env, "system", text, syscall, err, detail);
}

void ThrowSystem(Napi::Env env, const char* syscall, int err, const std::string& detail) {
  throw Napi::Error(env, MakeSystemError(env, syscall, err, detail));
}

void ThrowErrno(Napi::Env env, const char* syscall, const std::string& detail) {
  ThrowSystem(env, syscall, errno, detail);
}

void ThrowArgument(Napi::Env env, const std::string& message) {
  throw Napi::Error(env, MakeError(env, "argument", message, "", 0, ""));
}

// ---- argument readers ------------------------------------------------------------------------

int64_t ArgInteger(const Napi::CallbackInfo& info, size_t index, const char* what, int64_t min, int64_t max) {
  Napi::Value v = info[index];
  if (!v.IsNumber()) ThrowArgument(info.Env(), std::string(what) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::trunc(d) != d) ThrowArgument(info.Env(), std::string(what) + " must be an integer");
  if (d < static_cast<double>(min) || d > static_cast<double>(max)) {
    ThrowArgument(info.Env(), std::string(what) + " must be between " + std::to_string(min) + " and " +
                                  std::to_string(max) + ", got " + FormatNumber(d));
  }
  return static_cast<int64_t>(d);
}

int ArgFd(const Napi::CallbackInfo& info, size_t index, const char* what) {
  return static_cast<int>(ArgInteger(info, index, what, 0, INT32_MAX));
}

size_t ArgSize(const Napi::CallbackInfo& info, size_t index, const char* what) {
  return static_cast<size_t>(ArgInteger(info, index, what, 1, (int64_t{1} << 53) - 1));
}

std::string ArgString(const Napi::CallbackInfo& info, size_t index, const char* what, bool allowNul) {
  Napi::Value v = info[index];
  if (!v.IsString()) ThrowArgument(info.Env(), std::string(what) + " must be a string");
  std::string s = v.As<Napi::String>().Utf8Value();
  if (!allowNul && s.find('\0') != std::string::npos) {
    ThrowArgument(info.Env(), std::string(what) + " must not contain NUL characters");
  }
  return s;
}

std::string ArgIpcName(const Napi::CallbackInfo& info, size_t index, const char* what) {
  std::string name = ArgString(info, index, what);
  if (name.size() < 2 || name[0] != '/' || name.find('/', 1) != std::string::npos) {
    ThrowArgument(info.Env(), std::string(what) + " must be \"/\" followed by a name without \"/\", got \"" + name + "\"");
  }
  if (name.size() > NAME_MAX - 4) {  // sem_open prefixes "sem." in /dev/shm
    ThrowArgument(info.Env(), std::string(what) + " is too long (at most " + std::to_string(NAME_MAX - 4) + " bytes)");
  }
  return name;
}

bool ArgBool(const Napi::CallbackInfo& info, size_t index, const char* what) {
  Napi::Value v = info[index];
  if (!v.IsBoolean()) ThrowArgument(info.Env(), std::string(what) + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

// ---- setErrorFactory -----------------------------------------------------------------------

static void SetErrorFactory(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) ThrowArgument(info.Env(), "setErrorFactory: factory must be a function");
  GetData(info.Env())->errorFactory = Napi::Persistent(info[0].As<Napi::Function>());
}

void InitErrors(Napi::Env env, Napi::Object exports) {
  exports.Set("setErrorFactory", Napi::Function::New(env, SetErrorFactory, "setErrorFactory"));
}

void ReportCallbackException(napi_env env) {
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) != napi_ok || !pending) return;
  napi_value exception;
  if (napi_get_and_clear_last_exception(env, &exception) != napi_ok) return;
  napi_valuetype type;
  if (napi_typeof(env, exception, &type) != napi_ok || type == napi_undefined || type == napi_null) return;
  napi_fatal_exception(env, exception);
}

}  // namespace plexus
