// File descriptors owned by an environment. Every fd the addon hands to JavaScript is recorded
// as owned by the environment (main thread or worker) that made it, and closed when that
// environment is torn down: a terminated worker's sockets then reach EOF at their peers, which
// free what the vanished thread held (a ring slot, a request in flight) at once. Closing through
// `close()` removes the record. One table for the process, under a mutex: a descriptor made in
// one thread may be closed by another.
#include <unistd.h>

#include <cerrno>
#include <mutex>
#include <unordered_map>

#include "common.h"

namespace plexus {

namespace {

std::mutex& TableMutex() {
  static std::mutex mutex;
  return mutex;
}

std::unordered_map<int, AddonData*>& Table() {
  static auto* table = new std::unordered_map<int, AddonData*>();  // never destroyed: used at exit
  return *table;
}

}  // namespace

int OwnFd(Napi::Env env, int fd) {
  AddonData* data = GetData(env);
  std::lock_guard<std::mutex> lock(TableMutex());
  Table()[fd] = data;
  return fd;
}

int CloseFd(int fd) {
  std::lock_guard<std::mutex> lock(TableMutex());
  Table().erase(fd);
  return close(fd) != 0 && errno != EINTR ? errno : 0;
}

void CloseOwnedFds(AddonData* data) {
  std::lock_guard<std::mutex> lock(TableMutex());
  for (auto it = Table().begin(); it != Table().end();) {
    if (it->second == data) {
      close(it->first);
      it = Table().erase(it);
    } else {
      ++it;
    }
  }
}

size_t OwnedFdCount(AddonData* data) {
  std::lock_guard<std::mutex> lock(TableMutex());
  size_t n = 0;
  for (const auto& entry : Table()) n += entry.second == data ? 1 : 0;
  return n;
}

}  // namespace plexus
