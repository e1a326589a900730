// A TCP listener whose connections Node wraps by file descriptor (`new net.Socket({ fd,
// onread })`): Node offers reads straight into a caller's buffer (`onread`) only on sockets it
// creates itself, not on those its `net.Server` accepts. With them a large message is read by
// the kernel into its own buffer instead of being copied there from 64 KiB reads.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common.h"

namespace plexus {

namespace {

// tcpListen(ip, port, backlog): a non-blocking listening socket on an IP literal (v4 or v6,
// SO_REUSEADDR); returns { fd, port } (the port actually bound). The fd is owned by the addon.
Napi::Value TcpListen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string ip = ArgString(info, 0, "tcpListen: ip", /*allowNul=*/false);
  if (info.Length() < 3 || !info[1].IsNumber() || !info[2].IsNumber()) ThrowArgument(env, "tcpListen(ip, port, backlog): port and backlog must be numbers");
  const double port = info[1].As<Napi::Number>().DoubleValue();
  const double backlog = info[2].As<Napi::Number>().DoubleValue();
  if (!(port >= 0 && port <= 65535) || port != static_cast<double>(static_cast<int>(port))) ThrowArgument(env, "tcpListen: port must be an integer in 0..65535");
  if (!(backlog >= 1 && backlog <= 65535)) ThrowArgument(env, "tcpListen: backlog must be in 1..65535");
  sockaddr_storage ss{};
  socklen_t length = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    length = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    length = sizeof(sockaddr_in6);
  } else {
    ThrowArgument(env, "tcpListen: " + ip + " is not an IP address");
  }
  const std::string where = (ss.ss_family == AF_INET6 ? "[" + ip + "]" : ip) + ":" + std::to_string(static_cast<int>(port));
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(env, "socket", where);
  int one = 1;
  int zero = 0;
  const char* call = nullptr;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
    call = "setsockopt";
  } else if (ss.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) != 0) {
    call = "setsockopt";  // dual stack, as Node's net.Server, whatever net.ipv6.bindv6only says
  } else if (bind(fd, reinterpret_cast<sockaddr*>(&ss), length) != 0) {
    call = "bind";
  } else if (listen(fd, static_cast<int>(backlog)) != 0) {
    call = "listen";
  } else if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &length) != 0) {
    call = "getsockname";
  }
  if (call != nullptr) {
    int err = errno;
    close(fd);
    ThrowSystem(env, call, err, where);
  }
  const int bound = ntohs(ss.ss_family == AF_INET6 ? v6->sin6_port : v4->sin_port);
  Napi::Object out = Napi::Object::New(env);
  out.Set("fd", Napi::Number::New(env, OwnFd(env, fd)));
  out.Set("port", Napi::Number::New(env, bound));
  return out;
}

// tcpAccept(fd): the next pending connection's fd (non-blocking, close-on-exec), or -1 when
// none is pending; throws SystemError otherwise (EMFILE: the connection stays in the backlog).
// The fd is NOT owned by the addon: the caller hands it to Node, which closes it.
Napi::Value TcpAccept(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int listener = ArgFd(info, 0, "tcpAccept: fd");
  for (;;) {
    int fd = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) return Napi::Number::New(env, fd);
    // Interrupted, or a pending network error of that one connection (accept(2) on Linux):
    // take the next one.
    if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO || errno == ENETDOWN || errno == ENOPROTOOPT ||
        errno == EHOSTDOWN || errno == ENONET || errno == EHOSTUNREACH || errno == EOPNOTSUPP || errno == ENETUNREACH ||
        errno == EPERM) {
      continue;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Napi::Number::New(env, -1);
    ThrowErrno(env, "accept4", "fd " + std::to_string(listener));  // EMFILE ...: the caller backs off
  }
}

}  // namespace

void InitTcp(Napi::Env env, Napi::Object exports) {
  exports.Set("tcpListen", Napi::Function::New(env, TcpListen, "tcpListen"));
  exports.Set("tcpAccept", Napi::Function::New(env, TcpAccept, "tcpAccept"));
}

}  // namespace plexus
