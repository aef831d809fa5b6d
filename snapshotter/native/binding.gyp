{
  "targets": [
    {
      "target_name": "clip_zran",
      "sources": ["zran.c"],
      "libraries": ["-lz"],
      "cflags": ["-O2", "-Wall", "-Wextra"],
      "ldflags": ["-Wl,-Bsymbolic"]
    },
    {
      "target_name": "clip_fusedev",
      "sources": ["fusedev.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"],
      "ldflags": ["-Wl,-Bsymbolic"]
    },
    {
      "target_name": "clip_lz4",
      "sources": ["lz4.c"],
      "libraries": ["-llz4"],
      "cflags": ["-O2", "-Wall", "-Wextra"],
      "ldflags": ["-Wl,-Bsymbolic"]
    },
    {
      "target_name": "clip_pagecache",
      "sources": ["pagecache.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"],
      "ldflags": ["-Wl,-Bsymbolic"]
    }
  ]
}
