/*
 * clip_fusedev: the few system calls the kernel FUSE driver (snapshotter/src/fuse/kernel) needs
 * that Node has no binding for. Everything else (the wire protocol, writing replies) is in
 * TypeScript.
 *   - mount(2) of a `fuse.clip` file system on an open /dev/fuse descriptor, and umount2(2);
 *   - a reader per /dev/fuse descriptor: uv_poll readiness on the non-blocking descriptor, so
 *     hundreds of mounts never occupy libuv's thread pool, each request handed to JS as a Buffer;
 *   - READ replies spliced from a cached file (the disk cache) straight to /dev/fuse: the kernel
 *     copies page-cache pages into the FUSE file's pages once, with no trip through user memory;
 *   - SOCK_SEQPACKET unix sockets carrying descriptors (SCM_RIGHTS) for the hand-over of a
 *     running FUSE server's connections to its successor. These calls block (with a timeout):
 *     they run only during a hand-over, when nothing else is being served;
 *   - sdNotify: one datagram on systemd's notification socket ($NOTIFY_SOCKET), since Node has no
 *     unix datagram sockets. A FUSE server that replaces another under systemd names itself the
 *     unit's main process this way (MAINPID=, READY=1).
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_FDS_PER_MESSAGE 64
#define READS_PER_WAKEUP 64

#define CHECK(env, call)                                                        \
  do {                                                                          \
    if ((call) != napi_ok) {                                                    \
      napi_throw_error((env), "CLIP_FUSEDEV_NAPI", "N-API call failed: " #call); \
      return NULL;                                                              \
    }                                                                           \
  } while (0)

/* Throws an Error whose `code` is the errno name (ENOENT, …) and whose `errno` is the number. */
static napi_value throw_errno(napi_env env, const char *what, int err) {
  napi_value msg, code, error, num;
  char text[512];
  const char *name = strerrorname_np(err);
  snprintf(text, sizeof text, "%s: %s", what, strerror(err));
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
  napi_create_string_utf8(env, name != NULL ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, msg, &error);
  napi_create_int32(env, err, &num);
  napi_set_named_property(env, error, "errno", num);
  napi_throw(env, error);
  return NULL;
}

static int get_string(napi_env env, napi_value v, char *out, size_t cap) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, out, cap, &len) != napi_ok) return -1;
  return len + 1 >= cap ? -1 : 0;
}

/* mount(source, target, fstype, flags, data): mount(2). */
static napi_value do_mount(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  char source[256], target[4096], fstype[64], data[4096];
  int64_t flags;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5 || get_string(env, argv[0], source, sizeof source) || get_string(env, argv[1], target, sizeof target) ||
      get_string(env, argv[2], fstype, sizeof fstype) || napi_get_value_int64(env, argv[3], &flags) != napi_ok ||
      get_string(env, argv[4], data, sizeof data)) {
    napi_throw_type_error(env, "CLIP_FUSEDEV_ARGS", "mount(source, target, fstype, flags, data)");
    return NULL;
  }
  if (mount(source, target, fstype, (unsigned long)flags, data) != 0) return throw_errno(env, "mount", errno);
  return NULL;
}

/* umount(target, flags): umount2(2). */
static napi_value do_umount(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  char target[4096];
  int32_t flags;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || get_string(env, argv[0], target, sizeof target) || napi_get_value_int32(env, argv[1], &flags) != napi_ok) {
    napi_throw_type_error(env, "CLIP_FUSEDEV_ARGS", "umount(target, flags)");
    return NULL;
  }
  if (umount2(target, flags) != 0) return throw_errno(env, "umount2", errno);
  return NULL;
}

/* ---- readers ---- */

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_async_context async;
  int fd;
  int active;
  int closed;    /* uv_close finished */
  int finalized; /* the JS handle was collected */
  size_t size;
  unsigned char *buf;
} reader_t;

static void reader_closed(uv_handle_t *h) {
  reader_t *r = (reader_t *)h->data;
  free(r->buf);
  r->buf = NULL;
  r->closed = 1;
  if (r->finalized) free(r);
}

static void reader_stop(reader_t *r) {
  if (!r->active) return;
  r->active = 0;
  uv_poll_stop(&r->poll);
  napi_delete_reference(r->env, r->callback);
  napi_async_destroy(r->env, r->async);
  uv_close((uv_handle_t *)&r->poll, reader_closed);
}

/* Calls the JS callback with (buffer | null, errno). */
static void reader_emit(reader_t *r, const unsigned char *data, size_t len, int err) {
  napi_env env = r->env;
  napi_handle_scope scope;
  napi_value cb, recv, argv[2], result;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  if (napi_get_reference_value(env, r->callback, &cb) == napi_ok && cb != NULL) {
    if (data != NULL) napi_create_buffer_copy(env, len, data, NULL, &argv[0]);
    else napi_get_null(env, &argv[0]);
    napi_create_int32(env, err, &argv[1]);
    napi_get_global(env, &recv);
    if (napi_make_callback(env, r->async, recv, cb, 2, argv, &result) == napi_pending_exception) {
      napi_value ex;
      napi_get_and_clear_last_exception(env, &ex);
      napi_fatal_exception(env, ex);
    }
  }
  napi_close_handle_scope(env, scope);
}

static void reader_ready(uv_poll_t *p, int status, int events) {
  reader_t *r = (reader_t *)p->data;
  (void)events;
  if (status < 0) {
    reader_emit(r, NULL, 0, EIO);
    reader_stop(r);
    return;
  }
  for (int i = 0; i < READS_PER_WAKEUP && r->active; i++) {
    ssize_t n = read(r->fd, r->buf, r->size);
    if (n > 0) {
      reader_emit(r, r->buf, (size_t)n, 0);
      continue;
    }
    int err = n == 0 ? ENODEV : errno;
    if (err == EAGAIN || err == EWOULDBLOCK) return;
    /* EINTR: try again; ENOENT: the request was interrupted before we read it. */
    if (err == EINTR || err == ENOENT) continue;
    /* ENODEV: unmounted (or the connection aborted): no request will ever come again. */
    reader_emit(r, NULL, 0, err);
    reader_stop(r);
    return;
  }
}

/* Freed once both its poll handle is closed and its JS handle collected, whichever comes last. */
static void reader_finalize(napi_env env, void *data, void *hint) {
  (void)env; (void)hint;
  reader_t *r = (reader_t *)data;
  r->finalized = 1;
  if (r->closed) free(r);
}

/* startReader(fd, bufferSize, callback(buffer|null, errno)): External handle. */
static napi_value start_reader(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], name, handle, resource;
  int32_t fd, size;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int32(env, argv[1], &size) != napi_ok || size < 8192) {
    napi_throw_type_error(env, "CLIP_FUSEDEV_ARGS", "startReader(fd, bufferSize >= 8192, callback)");
    return NULL;
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return throw_errno(env, "fcntl(F_GETFL)", errno);
  if ((fl & O_NONBLOCK) == 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) return throw_errno(env, "fcntl(F_SETFL)", errno);
  uv_loop_t *loop;
  CHECK(env, napi_get_uv_event_loop(env, &loop));
  reader_t *r = calloc(1, sizeof *r);
  if (r == NULL) return throw_errno(env, "calloc", ENOMEM);
  r->buf = malloc((size_t)size);
  if (r->buf == NULL) {
    free(r);
    return throw_errno(env, "malloc", ENOMEM);
  }
  r->env = env;
  r->fd = fd;
  r->size = (size_t)size;
  int rc = uv_poll_init(loop, &r->poll, fd);
  if (rc != 0) {
    free(r->buf);
    free(r);
    return throw_errno(env, "uv_poll_init", -rc);
  }
  r->poll.data = r;
  napi_create_string_utf8(env, "clip.fusedev.reader", NAPI_AUTO_LENGTH, &name);
  napi_create_object(env, &resource);
  napi_async_init(env, resource, name, &r->async);
  napi_create_reference(env, argv[2], 1, &r->callback);
  r->active = 1;
  rc = uv_poll_start(&r->poll, UV_READABLE, reader_ready);
  if (rc != 0) {
    reader_stop(r);
    return throw_errno(env, "uv_poll_start", -rc);
  }
  CHECK(env, napi_create_external(env, r, reader_finalize, NULL, &handle));
  return handle;
}

/* stopReader(handle): no further callbacks; the descriptor stays open. Idempotent. */
static napi_value stop_reader(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *data = NULL;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_external(env, argv[0], &data) != napi_ok || data == NULL) {
    napi_throw_type_error(env, "CLIP_FUSEDEV_ARGS", "stopReader(handle)");
    return NULL;
  }
  reader_t *r = (reader_t *)data;
  if (r->active) reader_stop(r);
  return NULL;
}

/* ---- READ replies spliced from a file ---- */

/* cachestat(2) (Linux 6.5); the build host's headers may predate it. */
#ifndef __NR_cachestat
#define __NR_cachestat 451
#endif
struct clip_cachestat_range {
  uint64_t off, len;
};
struct clip_cachestat {
  uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};

/* One pipe for the process: replies are spliced one at a time on the JS thread. */
static int splice_pipe[2] = {-1, -1};
static size_t splice_capacity = 0;
static int splice_unusable = 0;

static int splice_pipe_ready(void) {
  if (splice_pipe[0] >= 0) return 1;
  if (splice_unusable) return 0;
  if (pipe2(splice_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    splice_unusable = 1;
    return 0;
  }
  /* A 1 MiB reply and its header need 257 pages; root may exceed pipe-max-size. */
  int size = fcntl(splice_pipe[1], F_SETPIPE_SZ, 2 << 20);
  if (size < 0) size = fcntl(splice_pipe[1], F_SETPIPE_SZ, 1 << 20);
  if (size < 0) size = fcntl(splice_pipe[1], F_GETPIPE_SZ);
  splice_capacity = size > 0 ? (size_t)size : 0;
  return 1;
}

/* Empty the pipe after a failed reply so the next one starts clean. */
static void splice_drain(void) {
  char scratch[65536];
  while (read(splice_pipe[0], scratch, sizeof scratch) > 0) {
  }
}

/*
 * spliceReply(fuseFd, header, fileFd, position, length): write a READ reply whose 16-byte header is
 * `header` and whose payload is `length` bytes of fileFd at `position`, moved by splice(2).
 * Returns true when the reply was written; false, with nothing written, when the range is not all
 * in the page cache (cachestat says so; the caller reads it the ordinary way so this thread never
 * waits for a disk), the kernel lacks cachestat, the pipe cannot hold it or the file is short.
 * Throws (code = errno name) when /dev/fuse refused the reply (ENOENT: the request is gone).
 */
static napi_value splice_reply(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5], out;
  int32_t fuse_fd, file_fd;
  int64_t pos, len;
  void *hdr;
  size_t hdr_len;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5 || napi_get_value_int32(env, argv[0], &fuse_fd) != napi_ok || napi_get_buffer_info(env, argv[1], &hdr, &hdr_len) != napi_ok ||
      napi_get_value_int32(env, argv[2], &file_fd) != napi_ok || napi_get_value_int64(env, argv[3], &pos) != napi_ok ||
      napi_get_value_int64(env, argv[4], &len) != napi_ok || hdr_len != 16 || pos < 0 || len <= 0) {
    napi_throw_type_error(env, "CLIP_FUSEDEV_ARGS", "spliceReply(fuseFd, header (16 bytes), fileFd, position, length > 0)");
    return NULL;
  }
  napi_get_boolean(env, false, &out);
  /* Pages the range spans: one pipe slot each at worst, plus one for the header. */
  uint64_t pages = ((uint64_t)pos + (uint64_t)len + 4095) / 4096 - (uint64_t)pos / 4096;
  if (!splice_pipe_ready() || (pages + 1) * 4096 > splice_capacity) return out;
  struct clip_cachestat_range range = {(uint64_t)pos, (uint64_t)len};
  struct clip_cachestat cs;
  if (syscall(__NR_cachestat, file_fd, &range, &cs, 0) != 0) {
    if (errno == ENOSYS) splice_unusable = 1;
    return out;
  }
  if (cs.nr_cache < pages) return out;
  if (write(splice_pipe[1], hdr, 16) != 16) {
    splice_drain();
    return out;
  }
  loff_t off = pos;
  int64_t moved = 0;
  while (moved < len) {
    ssize_t n = splice(file_fd, &off, splice_pipe[1], NULL, (size_t)(len - moved), SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) {
      moved += n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break; /* end of file, or the pipe is full */
  }
  if (moved != len) {
    splice_drain();
    return out;
  }
  for (;;) {
    ssize_t n = splice(splice_pipe[0], NULL, fuse_fd, NULL, (size_t)(len + 16), SPLICE_F_MOVE);
    if (n == len + 16) break;
    int err = n < 0 ? errno : EIO;
    if (n < 0 && errno == EINTR) continue;
    splice_drain();
    return throw_errno(env, "splice to /dev/fuse", err);
  }
  napi_get_boolean(env, true, &out);
  return out;
}

/*
 * spliceCapacity(): the largest READ payload spliceReply can move whatever its alignment (bytes),
 * 0 when splicing is unavailable. Requests larger than this take the buffer path.
 */
static napi_value splice_capacity_of(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  int64_t bytes = splice_pipe_ready() && !splice_unusable && splice_capacity >= 3 * 4096 ? (int64_t)splice_capacity - 2 * 4096 : 0;
  napi_create_int64(env, bytes, &out);
  return out;
}

/* ---- descriptor passing ---- */

static int wait_fd(int fd, short events, int timeout_ms) {
  struct pollfd p = {.fd = fd, .events = events};
  for (;;) {
    int n = poll(&p, 1, timeout_ms);
    if (n > 0) return 0;
    if (n == 0) return ETIMEDOUT;
    if (errno != EINTR) return errno;
  }
}

static int unix_addr(napi_env env, napi_value v, struct sockaddr_un *a) {
  memset(a, 0, sizeof *a);
  a->sun_family = AF_UNIX;
  return get_string(env, v, a->sun_path, sizeof a->sun_path);
}

/* seqListen(path): a listening SOCK_SEQPACKET socket bound at path (backlog 1). */
static napi_value seq_listen(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  struct sockaddr_un a;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || unix_addr(env, argv[0], &a)) {
    napi_throw_type_error(env, "CLIP_FUSEDEV_ARGS", "seqListen(path)");
    return NULL;
  }
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 1) != 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, "bind/listen", err);
  }
  napi_create_int32(env, fd, &out);
  return out;
}

/* seqAccept(listenFd, timeoutMs): the connected descriptor. */
static napi_value seq_accept(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  int32_t lfd, timeout;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || napi_get_value_int32(env, argv[0], &lfd) != napi_ok || napi_get_value_int32(env, argv[1], &timeout) != napi_ok) {
    napi_throw_type_error(env, "CLIP_FUSEDEV_ARGS", "seqAccept(fd, timeoutMs)");
    return NULL;
  }
  int err = wait_fd(lfd, POLLIN, timeout);
  if (err != 0) return throw_errno(env, "accept", err);
  int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
  if (fd < 0) return throw_errno(env, "accept", errno);
  napi_create_int32(env, fd, &out);
  return out;
}

/* seqConnect(path): a connected SOCK_SEQPACKET socket. */
static napi_value seq_connect(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  struct sockaddr_un a;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || unix_addr(env, argv[0], &a)) {
    napi_throw_type_error(env, "CLIP_FUSEDEV_ARGS", "seqConnect(path)");
    return NULL;
  }
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, "connect", err);
  }
  napi_create_int32(env, fd, &out);
  return out;
}

/* seqSend(fd, data, fds[], timeoutMs): one message carrying data and up to 64 descriptors. */
static napi_value seq_send(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  int32_t sock, timeout;
  void *data;
  size_t len;
  uint32_t nfds = 0;
  bool is_array = false;
  int fds[MAX_FDS_PER_MESSAGE];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4 || napi_get_value_int32(env, argv[0], &sock) != napi_ok || napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok ||
      napi_is_array(env, argv[2], &is_array) != napi_ok || !is_array || napi_get_array_length(env, argv[2], &nfds) != napi_ok ||
      nfds > MAX_FDS_PER_MESSAGE || napi_get_value_int32(env, argv[3], &timeout) != napi_ok || len == 0) {
    napi_throw_type_error(env, "CLIP_FUSEDEV_ARGS", "seqSend(fd, nonEmptyBuffer, fds (at most 64), timeoutMs)");
    return NULL;
  }
  for (uint32_t i = 0; i < nfds; i++) {
    napi_value e;
    CHECK(env, napi_get_element(env, argv[2], i, &e));
    if (napi_get_value_int32(env, e, &fds[i]) != napi_ok) {
      napi_throw_type_error(env, "CLIP_FUSEDEV_ARGS", "seqSend: fds must be integers");
      return NULL;
    }
  }
  struct iovec iov = {.iov_base = data, .iov_len = len};
  union {
    char buf[CMSG_SPACE(sizeof(int) * MAX_FDS_PER_MESSAGE)];
    struct cmsghdr align;
  } ctl;
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
  if (nfds > 0) {
    memset(&ctl, 0, sizeof ctl);
    msg.msg_control = ctl.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  for (;;) {
    int err = wait_fd(sock, POLLOUT, timeout);
    if (err != 0) return throw_errno(env, "sendmsg", err);
    ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) break;
    if (errno == EAGAIN || errno == EINTR) continue;
    return throw_errno(env, "sendmsg", errno);
  }
  return NULL;
}

/* seqRecv(fd, maxBytes, timeoutMs): {data, fds} or null at end of stream. */
static napi_value seq_recv(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], out, buf, arr;
  int32_t sock, max, timeout;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3 || napi_get_value_int32(env, argv[0], &sock) != napi_ok || napi_get_value_int32(env, argv[1], &max) != napi_ok ||
      napi_get_value_int32(env, argv[2], &timeout) != napi_ok || max <= 0) {
    napi_throw_type_error(env, "CLIP_FUSEDEV_ARGS", "seqRecv(fd, maxBytes, timeoutMs)");
    return NULL;
  }
  unsigned char *data = malloc((size_t)max);
  if (data == NULL) return throw_errno(env, "malloc", ENOMEM);
  union {
    char buf[CMSG_SPACE(sizeof(int) * MAX_FDS_PER_MESSAGE)];
    struct cmsghdr align;
  } ctl;
  struct iovec iov = {.iov_base = data, .iov_len = (size_t)max};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
  ssize_t n;
  for (;;) {
    int err = wait_fd(sock, POLLIN, timeout);
    if (err != 0) {
      free(data);
      return throw_errno(env, "recvmsg", err);
    }
    n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n >= 0) break;
    if (errno == EAGAIN || errno == EINTR) continue;
    int e = errno;
    free(data);
    return throw_errno(env, "recvmsg", e);
  }
  CHECK(env, napi_create_array(env, &arr));
  uint32_t k = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    int *fds = (int *)CMSG_DATA(c);
    for (size_t i = 0; i < count; i++) {
      napi_value v;
      napi_create_int32(env, fds[i], &v);
      napi_set_element(env, arr, k++, v);
    }
  }
  if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
    /* Never keep half a message: close what came and fail. */
    for (uint32_t i = 0; i < k; i++) {
      napi_value v;
      int32_t fd;
      napi_get_element(env, arr, i, &v);
      if (napi_get_value_int32(env, v, &fd) == napi_ok) close(fd);
    }
    free(data);
    return throw_errno(env, "recvmsg (message truncated)", EMSGSIZE);
  }
  if (n == 0 && k == 0) {
    free(data);
    napi_get_null(env, &out);
    return out;
  }
  napi_status st = napi_create_buffer_copy(env, (size_t)n, data, NULL, &buf);
  free(data);
  if (st != napi_ok) return throw_errno(env, "napi_create_buffer_copy", ENOMEM);
  CHECK(env, napi_create_object(env, &out));
  napi_set_named_property(env, out, "data", buf);
  napi_set_named_property(env, out, "fds", arr);
  return out;
}

/*
 * sdNotify(path, message): send `message` as one datagram to the AF_UNIX SOCK_DGRAM socket at
 * `path`; a path starting with '@' is in the abstract namespace (the '@' becomes a NUL byte), as
 * systemd's $NOTIFY_SOCKET may name it. Non-blocking: systemd reads its socket promptly, and a
 * full queue is reported (EAGAIN) rather than waited on.
 */
static napi_value sd_notify(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  struct sockaddr_un a;
  char msg[4096];
  size_t path_len = 0, msg_len = 0;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  if (argc < 2 || napi_get_value_string_utf8(env, argv[0], a.sun_path, sizeof a.sun_path, &path_len) != napi_ok ||
      path_len < 2 || path_len + 1 >= sizeof a.sun_path || (a.sun_path[0] != '/' && a.sun_path[0] != '@') ||
      napi_get_value_string_utf8(env, argv[1], msg, sizeof msg, &msg_len) != napi_ok || msg_len == 0 || msg_len + 1 >= sizeof msg) {
    napi_throw_type_error(env, "CLIP_FUSEDEV_ARGS", "sdNotify(path: absolute or @abstract, message: 1..4094 bytes)");
    return NULL;
  }
  socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + path_len);
  if (a.sun_path[0] == '@') a.sun_path[0] = '\0';
  else alen += 1; /* the terminating NUL of a file system path */
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  ssize_t n = sendto(fd, msg, msg_len, MSG_NOSIGNAL, (struct sockaddr *)&a, alen);
  int err = errno;
  close(fd);
  if (n < 0) return throw_errno(env, "sendto", err);
  if ((size_t)n != msg_len) return throw_errno(env, "sendto (short)", EMSGSIZE);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"mount", NULL, do_mount, NULL, NULL, NULL, napi_enumerable, NULL},
      {"umount", NULL, do_umount, NULL, NULL, NULL, napi_enumerable, NULL},
      {"startReader", NULL, start_reader, NULL, NULL, NULL, napi_enumerable, NULL},
      {"stopReader", NULL, stop_reader, NULL, NULL, NULL, napi_enumerable, NULL},
      {"spliceReply", NULL, splice_reply, NULL, NULL, NULL, napi_enumerable, NULL},
      {"spliceCapacity", NULL, splice_capacity_of, NULL, NULL, NULL, napi_enumerable, NULL},
      {"seqListen", NULL, seq_listen, NULL, NULL, NULL, napi_enumerable, NULL},
      {"seqAccept", NULL, seq_accept, NULL, NULL, NULL, napi_enumerable, NULL},
      {"seqConnect", NULL, seq_connect, NULL, NULL, NULL, napi_enumerable, NULL},
      {"seqSend", NULL, seq_send, NULL, NULL, NULL, napi_enumerable, NULL},
      {"seqRecv", NULL, seq_recv, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sdNotify", NULL, sd_notify, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
