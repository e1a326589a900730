{
  "targets": [
    {
      "target_name": "plexus",
      "sources": [
        "native/addon.cc",
        "native/errors.cc",
        "native/segment.cc",
        "native/wake.cc",
        "native/fdpass.cc",
        "native/liveness.cc",
        "native/copy.cc",
        "native/semaphore.cc",
        "native/tcp.cc",
        "native/memory.cc",
        "native/fds.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_CPP_EXCEPTIONS", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-fexceptions", "-O2"],
      "cflags_cc!": ["-fno-exceptions"],
      "libraries": ["-lpthread", "-lrt"]
    }
  ]
}
