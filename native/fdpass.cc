// File-descriptor passing over AF_UNIX stream sockets (SCM_RIGHTS), which Node's `net` cannot
// do. Every socket is SOCK_NONBLOCK | SOCK_CLOEXEC; a path starting with "\0" is abstract.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <vector>

#include "common.h"

namespace plexus {

namespace {

constexpr size_t kMaxFds = 16;

struct UnixAddress {
  sockaddr_un addr;
  socklen_t length;
  bool abstract;
};

// Builds the address; abstract names use their exact length (they may contain any byte).
UnixAddress ArgAddress(const Napi::CallbackInfo& info, size_t index, const char* what) {
  std::string path = ArgString(info, index, what, /*allowNul=*/true);
  UnixAddress a{};
  a.addr.sun_family = AF_UNIX;
  a.abstract = !path.empty() && path[0] == '\0';
  if (path.empty() || (a.abstract && path.size() < 2)) ThrowArgument(info.Env(), std::string(what) + " is empty");
  if (!a.abstract && path.find('\0') != std::string::npos) {
    ThrowArgument(info.Env(), std::string(what) + " must not contain NUL characters (except a leading one)");
  }
  // A filesystem path needs room for its terminating NUL; an abstract name does not.
  size_t room = sizeof(a.addr.sun_path) - (a.abstract ? 0 : 1);
  if (path.size() > room) {
    ThrowArgument(info.Env(), std::string(what) + " is too long (at most " + std::to_string(room) + " bytes)");
  }
  std::memcpy(a.addr.sun_path, path.data(), path.size());
  a.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (a.abstract ? 0 : 1));
  return a;
}

std::string Printable(const UnixAddress& a) {
  if (!a.abstract) return a.addr.sun_path;
  size_t n = a.length - offsetof(sockaddr_un, sun_path);
  return "@" + std::string(a.addr.sun_path + 1, n - 1);
}

Napi::Value UnixListen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  UnixAddress a = ArgAddress(info, 0, "unixListen: path");
  std::string detail = Printable(a);
  if (!a.abstract) {
    struct stat st;
    if (lstat(a.addr.sun_path, &st) == 0 && S_ISSOCK(st.st_mode)) unlink(a.addr.sun_path);  // stale socket file
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(env, "socket", detail);
  const char* call = nullptr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a.addr), a.length) != 0) {
    call = "bind";
  } else if (listen(fd, SOMAXCONN) != 0) {
    call = "listen";
  }
  if (call != nullptr) {
    int err = errno;
    close(fd);
    ThrowSystem(env, call, err, detail);
  }
  return Napi::Number::New(env, OwnFd(env, fd));
}

Napi::Value UnixConnect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  UnixAddress a = ArgAddress(info, 0, "unixConnect: path");
  std::string detail = Printable(a);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(env, "socket", detail);
  int r;
  while ((r = connect(fd, reinterpret_cast<sockaddr*>(&a.addr), a.length)) != 0 && errno == EINTR) {
  }
  const char* call = r != 0 ? "connect" : nullptr;
  if (call == nullptr) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) call = "fcntl";
  }
  if (call != nullptr) {
    int err = errno;
    close(fd);
    ThrowSystem(env, call, err, detail);
  }
  return Napi::Number::New(env, OwnFd(env, fd));
}

Napi::Value UnixAccept(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int listener = ArgFd(info, 0, "unixAccept: fd");
  for (;;) {
    int fd = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) return Napi::Number::New(env, OwnFd(env, fd));
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Napi::Number::New(env, -1);
    ThrowErrno(env, "accept4", "fd " + std::to_string(listener));
  }
}

// Bytes of an ArrayBufferView (Buffer, typed array, DataView), also over a SharedArrayBuffer.
std::pair<const uint8_t*, size_t> ArgBytes(const Napi::CallbackInfo& info, size_t index, const char* what) {
  v8::Local<v8::Value> value = ToV8(info[index]);
  if (!value->IsArrayBufferView()) ThrowArgument(info.Env(), std::string(what) + " must be an ArrayBufferView");
  v8::Local<v8::ArrayBufferView> view = value.As<v8::ArrayBufferView>();
  size_t length = view->ByteLength();
  if (length == 0) return {nullptr, 0};
  // Buffer() also materialises a small on-heap typed array so the pointer stays valid.
  auto* base = static_cast<const uint8_t*>(view->Buffer()->Data());
  return {base + view->ByteOffset(), length};
}

Napi::Value SendFds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "sendFds: fd");
  if (!info[2].IsArray()) ThrowArgument(env, "sendFds: fds must be an array");
  Napi::Array list = info[2].As<Napi::Array>();
  if (list.Length() > kMaxFds) {
    ThrowArgument(env, "sendFds: at most " + std::to_string(kMaxFds) + " fds, got " + std::to_string(list.Length()));
  }
  int fds[kMaxFds];
  size_t count = list.Length();
  for (uint32_t i = 0; i < count; ++i) {
    Napi::Value v = list.Get(i);
    double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 0 && d <= INT32_MAX && static_cast<double>(static_cast<int>(d)) == d)) {
      ThrowArgument(env, "sendFds: fds[" + std::to_string(i) + "] must be a file descriptor (integer >= 0)");
    }
    fds[i] = static_cast<int>(d);
  }
  // Read last: nothing below runs JavaScript that could detach the buffer.
  auto [bytes, length] = ArgBytes(info, 1, "sendFds: data");
  if (length == 0) ThrowArgument(env, "sendFds: data must hold at least 1 byte");

  iovec iov{const_cast<uint8_t*>(bytes), length};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  if (count > 0) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * count);
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * count);
    std::memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * count);
  }
  for (;;) {
    ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n >= 0) return Napi::Number::New(env, static_cast<double>(n));  // may be short on a full socket
    if (errno == EINTR) continue;
    ThrowErrno(env, "sendmsg", "fd " + std::to_string(fd));
  }
}

Napi::Value RecvFds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "recvFds: fd");
  size_t maxBytes = ArgSize(info, 1, "recvFds: maxBytes");
  if (maxBytes > (size_t{1} << 30)) ThrowArgument(env, "recvFds: maxBytes must be at most 1 GiB");

  // Read into a reusable scratch buffer, then copy exactly what arrived into a fresh array.
  static thread_local std::vector<uint8_t> scratch;
  std::vector<uint8_t> large;
  std::vector<uint8_t>& buffer = maxBytes <= 65536 ? scratch : large;
  if (buffer.size() < maxBytes) buffer.resize(maxBytes);

  iovec iov{buffer.data(), maxBytes};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  while ((n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {
  }
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return env.Null();
    ThrowErrno(env, "recvmsg", "fd " + std::to_string(fd));
  }

  std::vector<int> fds;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const unsigned char* data = CMSG_DATA(c);
    for (size_t i = 0; i < count; ++i) {
      int received;
      std::memcpy(&received, data + i * sizeof(int), sizeof(int));
      fds.push_back(received);
    }
  }
  if (msg.msg_flags & MSG_CTRUNC) {
    for (int received : fds) close(received);
    ThrowSystem(env, "recvmsg", EMSGSIZE,
                "fd " + std::to_string(fd) + ": more than " + std::to_string(kMaxFds) + " fds sent, control data truncated");
  }

  Napi::ArrayBuffer bytes = Napi::ArrayBuffer::New(env, static_cast<size_t>(n));
  if (n > 0) std::memcpy(bytes.Data(), buffer.data(), static_cast<size_t>(n));
  Napi::Array list = Napi::Array::New(env, fds.size());
  for (size_t i = 0; i < fds.size(); ++i) list.Set(static_cast<uint32_t>(i), Napi::Number::New(env, OwnFd(env, fds[i])));
  Napi::Object result = Napi::Object::New(env);
  result.Set("data", Napi::Uint8Array::New(env, static_cast<size_t>(n), bytes, 0));
  result.Set("fds", list);
  return result;
}

Napi::Value PeerCredentials(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "peerCredentials: fd");
  ucred cred{};
  socklen_t length = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) != 0) {
    ThrowErrno(env, "getsockopt", "SO_PEERCRED, fd " + std::to_string(fd));
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("pid", Napi::Number::New(env, cred.pid));
  result.Set("uid", Napi::Number::New(env, cred.uid));
  result.Set("gid", Napi::Number::New(env, cred.gid));
  return result;
}

}  // namespace

void InitFdPass(Napi::Env env, Napi::Object exports) {
  exports.Set("unixListen", Napi::Function::New(env, UnixListen, "unixListen"));
  exports.Set("unixConnect", Napi::Function::New(env, UnixConnect, "unixConnect"));
  exports.Set("unixAccept", Napi::Function::New(env, UnixAccept, "unixAccept"));
  exports.Set("sendFds", Napi::Function::New(env, SendFds, "sendFds"));
  exports.Set("recvFds", Napi::Function::New(env, RecvFds, "recvFds"));
  exports.Set("peerCredentials", Napi::Function::New(env, PeerCredentials, "peerCredentials"));
}

}  // namespace plexus
