/*
 * clip_zran: random access into gzip streams on the system zlib (the technique of zlib's
 * examples/zran.c). Two operations:
 *   - an indexer fed the compressed stream chunk by chunk, which inflates it with Z_BLOCK and
 *     reports a checkpoint (compressed offset, uncompressed offset, bit offset, 32 KiB window)
 *     at the first deflate block boundary after every `span` bytes of output, plus the output
 *     itself so the caller can hash each span;
 *   - extract: inflate `outLen` bytes starting at a checkpoint, given the compressed bytes from
 *     the checkpoint on (including the partial byte when bits > 0) and its window.
 * Node's own zlib binding cannot do either (no inflatePrime, no Z_BLOCK stop reporting).
 */
#include <node_api.h>
#include <zlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>

#define WINDOW 32768
#define SCRATCH (256 * 1024)

#define CHECK(env, call)                                                     \
  do {                                                                       \
    if ((call) != napi_ok) {                                                 \
      napi_throw_error((env), "CLIP_ZRAN_NAPI", "N-API call failed: " #call); \
      return NULL;                                                           \
    }                                                                        \
  } while (0)

typedef struct {
  z_stream strm;
  int live;        /* inflateInit2 succeeded and inflateEnd not yet called */
  int done;        /* the gzip stream (all members) ended; later input is trailing garbage */
  int member_end;  /* a member ended; the next push resets for another member */
  uint64_t totin, totout, last, span;
  unsigned char *scratch;
} indexer_t;

static void indexer_free(indexer_t *ix) {
  if (ix == NULL) return;
  if (ix->live) inflateEnd(&ix->strm);
  free(ix->scratch);
  free(ix);
}

static void indexer_finalize(napi_env env, void *data, void *hint) {
  (void)env; (void)hint;
  indexer_free((indexer_t *)data);
}

static napi_value throw_zlib(napi_env env, const char *code, const char *what, z_stream *s) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, s != NULL && s->msg != NULL ? s->msg : "zlib error");
  napi_throw_error(env, code, msg);
  return NULL;
}

/* indexerCreate(spanBytes: number): External */
static napi_value indexer_create(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  double span;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(env, napi_get_value_double(env, argv[0], &span));
  indexer_t *ix = calloc(1, sizeof *ix);
  if (ix == NULL || (ix->scratch = malloc(SCRATCH)) == NULL) {
    indexer_free(ix);
    napi_throw_error(env, "CLIP_ZRAN_NOMEM", "out of memory");
    return NULL;
  }
  ix->span = span < 1 ? 1 : (uint64_t)span;
  if (inflateInit2(&ix->strm, 47) != Z_OK) {  /* 32 + 15: gzip or zlib header, full window */
    indexer_free(ix);
    napi_throw_error(env, "CLIP_ZRAN_INIT", "inflateInit2 failed");
    return NULL;
  }
  ix->live = 1;
  CHECK(env, napi_create_external(env, ix, indexer_finalize, NULL, &out));
  return out;
}

static napi_value make_point(napi_env env, indexer_t *ix) {
  napi_value obj, v, win;
  unsigned char dict[WINDOW];
  uInt dlen = WINDOW;
  void *wdata;
  if (inflateGetDictionary(&ix->strm, dict, &dlen) != Z_OK) return throw_zlib(env, "CLIP_ZRAN_WINDOW", "inflateGetDictionary", &ix->strm);
  CHECK(env, napi_create_object(env, &obj));
  CHECK(env, napi_create_double(env, (double)ix->totin, &v));
  CHECK(env, napi_set_named_property(env, obj, "in", v));
  CHECK(env, napi_create_double(env, (double)ix->totout, &v));
  CHECK(env, napi_set_named_property(env, obj, "out", v));
  CHECK(env, napi_create_uint32(env, ix->strm.data_type & 7, &v));
  CHECK(env, napi_set_named_property(env, obj, "bits", v));
  CHECK(env, napi_create_buffer_copy(env, dlen, dict, &wdata, &win));
  CHECK(env, napi_set_named_property(env, obj, "window", win));
  return obj;
}

/* A growable byte buffer for the output of one push. */
typedef struct { unsigned char *p; size_t len, cap; } bytes_t;

static int bytes_add(bytes_t *b, const unsigned char *src, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : SCRATCH;
    while (cap < b->len + n) cap *= 2;
    unsigned char *p = realloc(b->p, cap);
    if (p == NULL) return -1;
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, src, n);
  b->len += n;
  return 0;
}

/* indexerPush(ix, chunk: Buffer): { output: Buffer, points: Point[] } */
static napi_value indexer_push(napi_env env, napi_callback_info info) {
  size_t argc = 2, inlen;
  napi_value argv[2], result, points, outbuf;
  void *ext, *indata, *odata;
  uint32_t npoints = 0;
  bytes_t out = {0};
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(env, napi_get_value_external(env, argv[0], &ext));
  CHECK(env, napi_get_buffer_info(env, argv[1], &indata, &inlen));
  indexer_t *ix = ext;
  CHECK(env, napi_create_array(env, &points));
  z_stream *s = &ix->strm;
  s->next_in = indata;
  s->avail_in = (uInt)inlen;
  while (!ix->done && s->avail_in > 0) {
    if (ix->member_end) {
      /* Another member follows only if it starts with the gzip magic; anything else is padding. */
      if (s->next_in[0] != 0x1f) { ix->done = 1; break; }
      inflateReset(s);
      ix->member_end = 0;
    }
    s->next_out = ix->scratch;
    s->avail_out = SCRATCH;
    uInt before_in = s->avail_in;
    int ret = inflate(s, Z_BLOCK);
    size_t produced = SCRATCH - s->avail_out;
    ix->totin += before_in - s->avail_in;
    if (produced > 0 && bytes_add(&out, ix->scratch, produced) != 0) {
      free(out.p);
      napi_throw_error(env, "CLIP_ZRAN_NOMEM", "out of memory");
      return NULL;
    }
    ix->totout += produced;
    if (ret == Z_STREAM_END) { ix->member_end = 1; continue; }
    if (ret == Z_BUF_ERROR) break;
    if (ret != Z_OK) { free(out.p); return throw_zlib(env, "CLIP_ZRAN_INFLATE", "gzip stream is invalid", s); }
    if ((s->data_type & 128) && !(s->data_type & 64) && (ix->totout == 0 || ix->totout - ix->last >= ix->span)) {
      napi_value pt = make_point(env, ix);
      if (pt == NULL) { free(out.p); return NULL; }
      CHECK(env, napi_set_element(env, points, npoints++, pt));
      ix->last = ix->totout;
    }
  }
  CHECK(env, napi_create_buffer_copy(env, out.len, out.len ? out.p : (void *)"", &odata, &outbuf));
  free(out.p);
  CHECK(env, napi_create_object(env, &result));
  CHECK(env, napi_set_named_property(env, result, "output", outbuf));
  CHECK(env, napi_set_named_property(env, result, "points", points));
  return result;
}

/* indexerEnd(ix): { in, out, complete } — and frees zlib state. */
static napi_value indexer_end(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], obj, v;
  void *ext;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(env, napi_get_value_external(env, argv[0], &ext));
  indexer_t *ix = ext;
  int complete = ix->done || ix->member_end;
  if (ix->live) { inflateEnd(&ix->strm); ix->live = 0; }
  CHECK(env, napi_create_object(env, &obj));
  CHECK(env, napi_create_double(env, (double)ix->totin, &v));
  CHECK(env, napi_set_named_property(env, obj, "in", v));
  CHECK(env, napi_create_double(env, (double)ix->totout, &v));
  CHECK(env, napi_set_named_property(env, obj, "out", v));
  CHECK(env, napi_get_boolean(env, complete, &v));
  CHECK(env, napi_set_named_property(env, obj, "complete", v));
  return obj;
}

/*
 * The inflate core of extract, free of N-API calls so it can run on the thread pool. Returns NULL
 * on success or a static message; *code gets the error code.
 */
static const char *inflate_span(const unsigned char *in, size_t inlen, unsigned bits, const unsigned char *win, size_t wlen,
                                unsigned char *out, size_t outlen, const char **code) {
  z_stream s;
  memset(&s, 0, sizeof s);
  *code = "CLIP_ZRAN_INFLATE";
  if (outlen == 0) return NULL;
  if (inflateInit2(&s, -15) != Z_OK) return "extract: inflateInit2 failed";
  size_t inpos = 0;
  if (bits > 0) {
    if (inflatePrime(&s, (int)bits, in[0] >> (8 - bits)) != Z_OK) { inflateEnd(&s); return "extract: inflatePrime failed"; }
    inpos = 1;
  }
  if (wlen > 0 && inflateSetDictionary(&s, win, (uInt)wlen) != Z_OK) { inflateEnd(&s); return "extract: inflateSetDictionary failed"; }
  s.next_in = (unsigned char *)in + inpos;
  s.avail_in = (uInt)(inlen - inpos);
  s.next_out = out;
  s.avail_out = (uInt)outlen;
  int raw = 1;
  const char *err = NULL;
  while (s.avail_out > 0) {
    int ret = inflate(&s, Z_NO_FLUSH);
    if (ret == Z_STREAM_END) {
      /* End of a member: skip its trailer (raw mode leaves it to us), then parse the next header. */
      if (raw) {
        if (s.avail_in < 8) break;
        s.next_in += 8;
        s.avail_in -= 8;
        raw = 0;
        if (inflateReset2(&s, 31) != Z_OK) break;
      } else if (inflateReset(&s) != Z_OK) {
        break;
      }
      if (s.avail_in == 0) break;
      continue;
    }
    if (ret == Z_BUF_ERROR) { err = "extract: compressed span ended early"; *code = "CLIP_ZRAN_TRUNCATED"; break; }
    if (ret != Z_OK) { err = "extract: invalid deflate data"; break; }
  }
  if (err == NULL && s.avail_out > 0) { err = "extract: compressed span ended before the requested output"; *code = "CLIP_ZRAN_TRUNCATED"; }
  inflateEnd(&s);
  return err;
}

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref refs[3]; /* input, window, output: kept alive while the thread pool uses them */
  unsigned char *in, *win, *out;
  size_t inlen, wlen, outlen;
  unsigned bits;
  const char *err, *code;
} extract_job_t;

static void extract_execute(napi_env env, void *data) {
  (void)env;
  extract_job_t *j = data;
  j->err = inflate_span(j->in, j->inlen, j->bits, j->win, j->wlen, j->out, j->outlen, &j->code);
}

static void extract_complete(napi_env env, napi_status status, void *data) {
  extract_job_t *j = data;
  napi_value out, msg, code, err;
  napi_get_reference_value(env, j->refs[2], &out);
  if (status == napi_ok && j->err == NULL) {
    napi_resolve_deferred(env, j->deferred, out);
  } else {
    napi_create_string_utf8(env, j->err ? j->err : "extract: cancelled", NAPI_AUTO_LENGTH, &msg);
    napi_create_string_utf8(env, j->err ? j->code : "CLIP_ZRAN_CANCELLED", NAPI_AUTO_LENGTH, &code);
    napi_create_error(env, code, msg, &err);
    napi_reject_deferred(env, j->deferred, err);
  }
  for (int i = 0; i < 3; i++) napi_delete_reference(env, j->refs[i]);
  napi_delete_async_work(env, j->work);
  free(j);
}

/*
 * extract(input: Buffer, bits: number, window: Buffer, outLen: number): Promise<Buffer>
 * `input` starts at the checkpoint's compressed offset, or one byte earlier when bits > 0.
 * Crosses gzip member boundaries (trailer, next header) as it meets them. Runs on the thread pool,
 * so a span's inflation (~10-30 ms for 4 MiB) does not stall the event loop serving FUSE.
 */
static napi_value extract(napi_env env, napi_callback_info info) {
  size_t argc = 4, inlen, wlen;
  napi_value argv[4], outbuf, promise, name;
  void *indata, *wdata, *odata;
  uint32_t bits;
  double outlen_d;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(env, napi_get_buffer_info(env, argv[0], &indata, &inlen));
  CHECK(env, napi_get_value_uint32(env, argv[1], &bits));
  CHECK(env, napi_get_buffer_info(env, argv[2], &wdata, &wlen));
  CHECK(env, napi_get_value_double(env, argv[3], &outlen_d));
  if (bits > 7 || wlen > WINDOW || outlen_d < 0 || outlen_d > 1073741824.0 || (bits > 0 && inlen == 0)) {
    napi_throw_error(env, "CLIP_ZRAN_BAD_ARGUMENT", "extract: bad bits, window or length");
    return NULL;
  }
  CHECK(env, napi_create_buffer(env, (size_t)outlen_d, &odata, &outbuf));
  extract_job_t *j = calloc(1, sizeof *j);
  if (j == NULL) { napi_throw_error(env, "CLIP_ZRAN_NOMEM", "out of memory"); return NULL; }
  j->in = indata; j->inlen = inlen; j->win = wdata; j->wlen = wlen; j->out = odata; j->outlen = (size_t)outlen_d; j->bits = bits;
  CHECK(env, napi_create_reference(env, argv[0], 1, &j->refs[0]));
  CHECK(env, napi_create_reference(env, argv[2], 1, &j->refs[1]));
  CHECK(env, napi_create_reference(env, outbuf, 1, &j->refs[2]));
  CHECK(env, napi_create_promise(env, &j->deferred, &promise));
  CHECK(env, napi_create_string_utf8(env, "clip_zran.extract", NAPI_AUTO_LENGTH, &name));
  CHECK(env, napi_create_async_work(env, NULL, name, extract_execute, extract_complete, j, &j->work));
  CHECK(env, napi_queue_async_work(env, j->work));
  return promise;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"indexerCreate", NULL, indexer_create, NULL, NULL, NULL, napi_default, NULL},
    {"indexerPush", NULL, indexer_push, NULL, NULL, NULL, napi_default, NULL},
    {"indexerEnd", NULL, indexer_end, NULL, NULL, NULL, napi_default, NULL},
    {"extract", NULL, extract, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_value v;
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  if (napi_create_string_utf8(env, zlibVersion(), NAPI_AUTO_LENGTH, &v) == napi_ok) napi_set_named_property(env, exports, "zlibVersion", v);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
