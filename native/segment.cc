// Shared-memory segments: POSIX shm objects and memfds mapped MAP_SHARED and exposed as real
// SharedArrayBuffers (V8 backing stores over the mapping, unmapped by the deleter when the last
// reference in any thread is collected). A registry of live mappings lets segmentRetire check
// that a buffer is ours before mapping zero pages over it.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <mutex>

#include "common.h"

namespace plexus {

namespace {

struct Mapping {
  size_t length;
  bool retired;
};

// Leaked on purpose: deleters may run on any thread, also during process exit.
std::mutex& RegistryMutex() {
  static auto* mutex = new std::mutex();
  return *mutex;
}

std::map<uintptr_t, Mapping>& Registry() {
  static auto* registry = new std::map<uintptr_t, Mapping>();
  return *registry;
}

// Backing-store deleter: runs once no thread references the buffer any more.
void UnmapDeleter(void* data, size_t length, void* /*deleter_data*/) {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  Registry().erase(reinterpret_cast<uintptr_t>(data));
  munmap(data, length);  // under the lock: the range cannot be re-registered before it is free
}

// Wraps a fresh mapping as a SharedArrayBuffer that owns it.
Napi::Value WrapMapping(Napi::Env env, void* addr, size_t length) {
  {
    std::lock_guard<std::mutex> lock(RegistryMutex());
    Registry()[reinterpret_cast<uintptr_t>(addr)] = Mapping{length, false};
  }
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  std::unique_ptr<v8::BackingStore> store =
      v8::SharedArrayBuffer::NewBackingStore(addr, length, UnmapDeleter, nullptr);
  v8::Local<v8::SharedArrayBuffer> buffer = v8::SharedArrayBuffer::New(isolate, std::move(store));
  return Napi::Value(env, FromV8(buffer));
}

std::string Describe(const std::string& name, size_t size) {
  return name + ", " + std::to_string(size) + " bytes";
}

// ftruncate + posix_fallocate (so a full tmpfs fails now with ENOSPC rather than SIGBUS on a
// later write) + mmap. Returns 0 and sets *addr, or returns the errno and sets *call.
int SizeAndMap(int fd, size_t size, void** addr, const char** call) {
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
    *call = "ftruncate";
    return errno;
  }
  int r;
  while ((r = posix_fallocate(fd, 0, static_cast<off_t>(size))) == EINTR) {
  }
  if (r != 0) {
    *call = "posix_fallocate";
    return r;
  }
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    *call = "mmap";
    return errno;
  }
  *addr = p;
  return 0;
}

// Maps the whole current size of `fd` (from fstat).
Napi::Value MapWhole(Napi::Env env, int fd, const std::string& detail) {
  struct stat st;
  if (fstat(fd, &st) != 0) ThrowErrno(env, "fstat", detail);
  if (st.st_size <= 0) ThrowSystem(env, "mmap", EINVAL, detail + " (empty)");
  size_t length = static_cast<size_t>(st.st_size);
  void* addr = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (addr == MAP_FAILED) ThrowErrno(env, "mmap", detail);
  return WrapMapping(env, addr, length);
}

Napi::Value SegmentCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = ArgIpcName(info, 0, "segmentCreate: name");
  size_t size = ArgSize(info, 1, "segmentCreate: size");
  auto mode = static_cast<mode_t>(ArgInteger(info, 2, "segmentCreate: mode", 0, 07777));
  std::string detail = Describe(name, size);

  int fd = shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, mode);
  if (fd < 0) ThrowErrno(env, "shm_open", detail);
  const char* call = "fchmod";
  void* addr = nullptr;
  int err = fchmod(fd, mode) != 0 ? errno : 0;  // exact mode, whatever the umask
  if (err == 0) err = SizeAndMap(fd, size, &addr, &call);
  close(fd);
  if (err != 0) {
    shm_unlink(name.c_str());
    ThrowSystem(env, call, err, detail);
  }
  return WrapMapping(env, addr, size);
}

Napi::Value SegmentOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = ArgIpcName(info, 0, "segmentOpen: name");
  int fd = shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(env, "shm_open", name);
  try {
    Napi::Value buffer = MapWhole(env, fd, name);
    close(fd);
    return buffer;
  } catch (...) {
    close(fd);
    throw;
  }
}

Napi::Value SegmentUnlink(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = ArgIpcName(info, 0, "segmentUnlink: name");
  if (shm_unlink(name.c_str()) == 0) return Napi::Boolean::New(env, true);
  if (errno == ENOENT) return Napi::Boolean::New(env, false);
  ThrowErrno(env, "shm_unlink", name);
}

Napi::Value MemfdCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = ArgString(info, 0, "memfdCreate: name");
  size_t size = ArgSize(info, 1, "memfdCreate: size");
  std::string detail = Describe("memfd:" + name, size);

  int fd = memfd_create(name.c_str(), MFD_CLOEXEC);
  if (fd < 0) ThrowErrno(env, "memfd_create", detail);
  const char* call = nullptr;
  void* addr = nullptr;
  int err = SizeAndMap(fd, size, &addr, &call);
  if (err != 0) {
    close(fd);
    ThrowSystem(env, call, err, detail);
  }
  Napi::Value buffer = WrapMapping(env, addr, size);
  Napi::Object result = Napi::Object::New(env);
  result.Set("fd", Napi::Number::New(env, OwnFd(env, fd)));
  result.Set("buffer", buffer);
  return result;
}

Napi::Value MapFd(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "mapFd: fd");
  return MapWhole(info.Env(), fd, "fd " + std::to_string(fd));
}

void SegmentRetire(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  v8::Local<v8::Value> value = ToV8(info[0]);
  if (!value->IsSharedArrayBuffer()) ThrowArgument(env, "segmentRetire: buffer must be a SharedArrayBuffer");
  v8::Local<v8::SharedArrayBuffer> buffer = value.As<v8::SharedArrayBuffer>();
  void* addr = buffer->Data();
  size_t length = buffer->ByteLength();

  bool known = false;
  int err = 0;
  {
    std::lock_guard<std::mutex> lock(RegistryMutex());
    auto it = Registry().find(reinterpret_cast<uintptr_t>(addr));
    if (it != Registry().end() && it->second.length == length) {
      known = true;
      if (!it->second.retired) {
        void* p = mmap(addr, length, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
          err = errno;
        } else {
          it->second.retired = true;
        }
      }
    }
  }
  // Thrown outside the lock: building the error runs JavaScript.
  if (!known) ThrowArgument(env, "segmentRetire: buffer was not mapped by plexus");
  if (err != 0) ThrowSystem(env, "mmap", err, "retire");
}

void Close(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "close: fd");
  int err = CloseFd(fd);
  if (err != 0) ThrowSystem(info.Env(), "close", err, "fd " + std::to_string(fd));
}

// dup with FD_CLOEXEC: a second handle on the same open file (an eventfd shared by threads).
Napi::Value Dup(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "dup: fd");
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) ThrowErrno(info.Env(), "dup", "fd " + std::to_string(fd));
  return Napi::Number::New(info.Env(), OwnFd(info.Env(), copy));
}

}  // namespace

void InitSegment(Napi::Env env, Napi::Object exports) {
  exports.Set("segmentCreate", Napi::Function::New(env, SegmentCreate, "segmentCreate"));
  exports.Set("segmentOpen", Napi::Function::New(env, SegmentOpen, "segmentOpen"));
  exports.Set("segmentUnlink", Napi::Function::New(env, SegmentUnlink, "segmentUnlink"));
  exports.Set("memfdCreate", Napi::Function::New(env, MemfdCreate, "memfdCreate"));
  exports.Set("mapFd", Napi::Function::New(env, MapFd, "mapFd"));
  exports.Set("segmentRetire", Napi::Function::New(env, SegmentRetire, "segmentRetire"));
  exports.Set("close", Napi::Function::New(env, Close, "close"));
  exports.Set("dup", Napi::Function::New(env, Dup, "dup"));
  exports.Set("ownedFdCount", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(OwnedFdCount(GetData(info.Env()))));
  }, "ownedFdCount"));
}

}  // namespace plexus
