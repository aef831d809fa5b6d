/*
 * clip_pagecache: positional reads that never wait for a disk. preadv2(RWF_NOWAIT) copies what the
 * page cache holds and returns at once; whatever it cannot serve without I/O is left to the
 * caller's asynchronous path (libuv's thread pool). The FUSE read path uses it so a read of a
 * cached layer costs a copy on the main thread instead of a thread-pool round trip, and a read
 * that would block the event loop on a disk never happens there.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>

/*
 * preadNowait(fd, buffer, bufferOffset, length, position): bytes copied (fewer than length when the
 * rest is not cached or past the end of the file), or -1 when nothing could be read without waiting
 * (not cached, or the file system has no RWF_NOWAIT).
 * Other failures throw (code = errno name).
 */
static napi_value pread_nowait(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5], out;
  int32_t fd;
  int64_t off, len, pos;
  void *data;
  size_t cap;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 5 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_get_buffer_info(env, argv[1], &data, &cap) != napi_ok || napi_get_value_int64(env, argv[2], &off) != napi_ok ||
      napi_get_value_int64(env, argv[3], &len) != napi_ok || napi_get_value_int64(env, argv[4], &pos) != napi_ok || off < 0 || len < 0 ||
      pos < 0 || (uint64_t)off + (uint64_t)len > cap) {
    napi_throw_type_error(env, "CLIP_PAGECACHE_ARGS", "preadNowait(fd, buffer, offset, length, position) within the buffer");
    return NULL;
  }
  int64_t done = 0;
  int blocked = 0;
  while (done < len) {
    struct iovec iov = {.iov_base = (char *)data + off + done, .iov_len = (size_t)(len - done)};
    ssize_t n = preadv2(fd, &iov, 1, (off_t)(pos + done), RWF_NOWAIT);
    if (n > 0) {
      done += n;
      continue;
    }
    if (n == 0) break; /* end of file */
    if (errno == EINTR) continue;
    /* EAGAIN: the rest needs I/O; EOPNOTSUPP/EINVAL: no RWF_NOWAIT here. The caller reads the rest. */
    if (errno == EAGAIN || errno == EOPNOTSUPP || errno == EINVAL) {
      blocked = 1;
      break;
    }
    napi_value msg, code, error;
    const char *name = strerrorname_np(errno);
    napi_create_string_utf8(env, strerror(errno), NAPI_AUTO_LENGTH, &msg);
    napi_create_string_utf8(env, name != NULL ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &code);
    napi_create_error(env, code, msg, &error);
    napi_throw(env, error);
    return NULL;
  }
  napi_create_int64(env, done == 0 && blocked ? -1 : done, &out);
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"preadNowait", NULL, pread_nowait, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
