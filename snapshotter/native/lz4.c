/*
 * clip_lz4: LZ4 blocks of ContentCache chunks, compressed and inflated into buffers the caller
 * allocated, on libuv's thread pool. lz4-napi (which the index formats keep using) returns buffers
 * from its own allocator on whichever pool thread ran the job; they are freed later on the main
 * thread, and its arena kept hundreds of MB of them resident after a multi-GB layer's chunks
 * (issue 15). Here the pool threads allocate nothing (liblz4 keeps its state on the stack): every
 * byte is in a buffer the JS side owns and V8 accounts for.
 * Also one allocator setting: glibc's mmap threshold, fixed (see mmap_threshold below).
 */
#include <node_api.h>
#include <lz4.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>

#define CHECK(env, call)                                                      \
  do {                                                                        \
    if ((call) != napi_ok) {                                                  \
      napi_throw_error((env), "CLIP_LZ4_NAPI", "N-API call failed: " #call); \
      return NULL;                                                            \
    }                                                                         \
  } while (0)

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref refs[2]; /* source and destination: kept alive while a pool thread uses them */
  const char *src;
  char *dst;
  int srclen, dstlen, compress, result;
} job_t;

static int run(int compress, const char *src, int srclen, char *dst, int dstlen) {
  return compress ? LZ4_compress_default(src, dst, srclen, dstlen) : LZ4_decompress_safe(src, dst, srclen, dstlen);
}

static void job_execute(napi_env env, void *data) {
  (void)env;
  job_t *j = data;
  j->result = run(j->compress, j->src, j->srclen, j->dst, j->dstlen);
}

static napi_value result_error(napi_env env, int compress) {
  napi_value msg, code, err;
  napi_create_string_utf8(env, compress ? "lz4: the destination cannot hold the compressed block" : "lz4: corrupt block, or it does not inflate into the destination", NAPI_AUTO_LENGTH, &msg);
  napi_create_string_utf8(env, compress ? "CLIP_LZ4_DESTINATION" : "CLIP_LZ4_CORRUPT", NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, msg, &err);
  return err;
}

static void job_complete(napi_env env, napi_status status, void *data) {
  job_t *j = data;
  napi_value v;
  if (status == napi_ok && (j->compress ? j->result > 0 : j->result >= 0)) {
    napi_create_int32(env, j->result, &v);
    napi_resolve_deferred(env, j->deferred, v);
  } else {
    napi_reject_deferred(env, j->deferred, result_error(env, j->compress));
  }
  for (int i = 0; i < 2; i++) napi_delete_reference(env, j->refs[i]);
  napi_delete_async_work(env, j->work);
  free(j);
}

/* (source, destination) as buffers of at most 2 GiB - 1 each; NULL (with an exception) if not. */
static int buffers(napi_env env, napi_callback_info info, napi_value *argv, void **src, size_t *srclen, void **dst, size_t *dstlen) {
  size_t argc = 2;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 || napi_get_buffer_info(env, argv[0], src, srclen) != napi_ok ||
      napi_get_buffer_info(env, argv[1], dst, dstlen) != napi_ok || *srclen > LZ4_MAX_INPUT_SIZE || *dstlen > INT32_MAX) {
    napi_throw_type_error(env, "CLIP_LZ4_ARGS", "lz4: (source, destination) buffers of at most LZ4_MAX_INPUT_SIZE bytes");
    return 0;
  }
  return 1;
}

static napi_value queue(napi_env env, napi_callback_info info, int compress) {
  napi_value argv[2], promise, name;
  void *src, *dst;
  size_t srclen, dstlen;
  if (!buffers(env, info, argv, &src, &srclen, &dst, &dstlen)) return NULL;
  job_t *j = calloc(1, sizeof *j);
  if (j == NULL) {
    napi_throw_error(env, "CLIP_LZ4_NOMEM", "lz4: out of memory");
    return NULL;
  }
  j->src = src; j->srclen = (int)srclen; j->dst = dst; j->dstlen = (int)dstlen; j->compress = compress;
  CHECK(env, napi_create_reference(env, argv[0], 1, &j->refs[0]));
  CHECK(env, napi_create_reference(env, argv[1], 1, &j->refs[1]));
  CHECK(env, napi_create_promise(env, &j->deferred, &promise));
  CHECK(env, napi_create_string_utf8(env, compress ? "clip_lz4.compress" : "clip_lz4.uncompress", NAPI_AUTO_LENGTH, &name));
  CHECK(env, napi_create_async_work(env, NULL, name, job_execute, job_complete, j, &j->work));
  CHECK(env, napi_queue_async_work(env, j->work));
  return promise;
}

/* compressInto(source, destination): Promise<block bytes>; rejects CLIP_LZ4_DESTINATION when it does not fit. */
static napi_value compress_into(napi_env env, napi_callback_info info) { return queue(env, info, 1); }

/* uncompressInto(block, destination): Promise<bytes inflated>; rejects CLIP_LZ4_CORRUPT. */
static napi_value uncompress_into(napi_env env, napi_callback_info info) { return queue(env, info, 0); }

/* uncompressIntoSync(block, destination): bytes inflated, on the calling thread (a worker's). */
static napi_value uncompress_into_sync(napi_env env, napi_callback_info info) {
  napi_value argv[2], v;
  void *src, *dst;
  size_t srclen, dstlen;
  if (!buffers(env, info, argv, &src, &srclen, &dst, &dstlen)) return NULL;
  int n = run(0, src, (int)srclen, dst, (int)dstlen);
  if (n < 0) {
    napi_throw(env, result_error(env, 0));
    return NULL;
  }
  CHECK(env, napi_create_int32(env, n, &v));
  return v;
}

/* compressBound(bytes): the destination size that always holds the block of `bytes` bytes. */
static napi_value compress_bound(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], v;
  int32_t n;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || napi_get_value_int32(env, argv[0], &n) != napi_ok || n < 0 ||
      n > LZ4_MAX_INPUT_SIZE) {
    napi_throw_type_error(env, "CLIP_LZ4_ARGS", "compressBound(bytes ≤ LZ4_MAX_INPUT_SIZE)");
    return NULL;
  }
  CHECK(env, napi_create_int32(env, LZ4_compressBound(n), &v));
  return v;
}

/*
 * fixMmapThreshold(bytes): allocations of at least `bytes` get their own mapping, returned to the
 * kernel when freed. glibc otherwise raises the threshold to the size of each mapped block freed,
 * after which 4 MiB chunk buffers come from the heap, and ~100 MB of them stayed resident after
 * GC freed them (issue 15). Returns whether glibc took it.
 */
static napi_value fix_mmap_threshold(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], v;
  int32_t n;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || napi_get_value_int32(env, argv[0], &n) != napi_ok || n < 4096) {
    napi_throw_type_error(env, "CLIP_LZ4_ARGS", "fixMmapThreshold(bytes >= 4096)");
    return NULL;
  }
  CHECK(env, napi_get_boolean(env, mallopt(M_MMAP_THRESHOLD, n) == 1, &v));
  return v;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"compressInto", NULL, compress_into, NULL, NULL, NULL, napi_enumerable, NULL},
      {"uncompressInto", NULL, uncompress_into, NULL, NULL, NULL, napi_enumerable, NULL},
      {"uncompressIntoSync", NULL, uncompress_into_sync, NULL, NULL, NULL, napi_enumerable, NULL},
      {"compressBound", NULL, compress_bound, NULL, NULL, NULL, napi_enumerable, NULL},
      {"fixMmapThreshold", NULL, fix_mmap_threshold, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_value v;
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  if (napi_create_string_utf8(env, LZ4_versionString(), NAPI_AUTO_LENGTH, &v) == napi_ok) napi_set_named_property(env, exports, "lz4Version", v);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
