// Module entry point and per-environment lifetime: every environment (the main thread and each
// worker) gets its own AddonData; an async cleanup hook closes the libuv handles and joins the
// threads of live resources before Node closes that environment's event loop.
#include "common.h"

namespace plexus {

EnvResource::EnvResource(AddonData* data) : data_(data) {
  data_->resources.insert(this);
}

EnvResource::~EnvResource() {
  if (data_ != nullptr) data_->resources.erase(this);
}

AddonData::~AddonData() {
  for (EnvResource* r : resources) r->data_ = nullptr;
}

void AddonData::HandleClosed() {
  --closingHandles;
  MaybeFinishTeardown();
}

void AddonData::BeginTeardown(napi_async_cleanup_hook_handle handle) {
  cleanupHandle = handle;
  tearingDown = true;
  // Teardown() may remove the resource from the set: iterate over a copy.
  std::unordered_set<EnvResource*> live(resources);
  for (EnvResource* r : live) r->Teardown();
  CloseOwnedFds(this);  // peers of this thread see EOF now, not at process exit
  MaybeFinishTeardown();
}

void AddonData::MaybeFinishTeardown() {
  if (tearingDown && closingHandles == 0 && cleanupHandle != nullptr) {
    napi_async_cleanup_hook_handle handle = cleanupHandle;
    cleanupHandle = nullptr;
    napi_remove_async_cleanup_hook(handle);
  }
}

AddonData* GetData(Napi::Env env) {
  return env.GetInstanceData<AddonData>();
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  env.SetInstanceData<AddonData>(data);  // deleted when the environment goes away
  napi_async_cleanup_hook_handle ignored = nullptr;
  napi_status status = napi_add_async_cleanup_hook(
      env,
      [](napi_async_cleanup_hook_handle handle, void* arg) {
        static_cast<AddonData*>(arg)->BeginTeardown(handle);
      },
      data, &ignored);
  NAPI_THROW_IF_FAILED(env, status, exports);

  InitErrors(env, exports);
  InitSegment(env, exports);
  InitWake(env, exports);
  InitFdPass(env, exports);
  InitLiveness(env, exports);
  InitCopy(env, exports);
  InitSemaphore(env, exports);
  InitTcp(env, exports);
  InitMemory(env, exports);
  return exports;
}

}  // namespace plexus

static Napi::Object InitPlexus(Napi::Env env, Napi::Object exports) {
  return plexus::Init(env, exports);
}

NODE_API_MODULE(plexus, InitPlexus)
