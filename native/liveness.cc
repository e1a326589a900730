// Process liveness: pidfds (readable when the process exits, immune to PID reuse), kill(pid, 0)
// and flock()-based lock files (released by the kernel when the holder dies).
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "common.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

namespace plexus {

namespace {

constexpr int64_t kMaxPid = 4194304;  // PID_MAX_LIMIT on 64-bit Linux

Napi::Value PidfdOpen(const Napi::CallbackInfo& info) {
  auto pid = static_cast<pid_t>(ArgInteger(info, 0, "pidfdOpen: pid", 1, kMaxPid));
  long fd = syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0) ThrowErrno(info.Env(), "pidfd_open", "pid " + std::to_string(pid));
  // pidfds are always close-on-exec.
  return Napi::Number::New(info.Env(), static_cast<double>(OwnFd(info.Env(), static_cast<int>(fd))));
}

Napi::Value ProcessAlive(const Napi::CallbackInfo& info) {
  auto pid = static_cast<pid_t>(ArgInteger(info, 0, "processAlive: pid", 1, kMaxPid));
  if (kill(pid, 0) == 0) return Napi::Boolean::New(info.Env(), true);
  if (errno == EPERM) return Napi::Boolean::New(info.Env(), true);  // exists, owned by someone else
  if (errno == ESRCH) return Napi::Boolean::New(info.Env(), false);
  ThrowErrno(info.Env(), "kill", "pid " + std::to_string(pid));
}

Napi::Value LockFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = ArgString(info, 0, "lockFile: path");
  if (path.empty()) ThrowArgument(env, "lockFile: path is empty");
  auto mode = static_cast<mode_t>(ArgInteger(info, 1, "lockFile: mode", 0, 07777));
  bool shared = ArgBool(info, 2, "lockFile: shared");
  // create = false: lock only a file that exists (ENOENT otherwise), so a process that merely
  // inspects others' lock files never recreates one its owner has just removed.
  bool create = info.Length() < 4 || info[3].IsUndefined() ? true : ArgBool(info, 3, "lockFile: create");

  int fd;
  const int flags = (create ? O_CREAT : 0) | O_RDWR | O_CLOEXEC;
  while ((fd = open(path.c_str(), flags, mode)) < 0 && errno == EINTR) {
  }
  if (fd < 0) ThrowErrno(env, "open", path);
  int r;
  while ((r = flock(fd, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB)) != 0 && errno == EINTR) {
  }
  if (r != 0) {
    int err = errno;
    close(fd);
    if (err == EWOULDBLOCK) return Napi::Number::New(env, -1);
    ThrowSystem(env, "flock", err, path);
  }
  return Napi::Number::New(env, OwnFd(env, fd));
}

}  // namespace

void InitLiveness(Napi::Env env, Napi::Object exports) {
  exports.Set("pidfdOpen", Napi::Function::New(env, PidfdOpen, "pidfdOpen"));
  exports.Set("processAlive", Napi::Function::New(env, ProcessAlive, "processAlive"));
  exports.Set("lockFile", Napi::Function::New(env, LockFile, "lockFile"));
}

}  // namespace plexus
