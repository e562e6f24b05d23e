/*
** codec.h — the binary encoding of stored records.
**
** Records are a version byte followed by fields in a fixed order: fixed-width
** integers little-endian, strings as a u32 length and bytes. The reader is
** bounds-checked: a truncated or corrupt value sets `err` and every later
** read returns zeros, so a decoder checks `err` once at the end and a bad
** value becomes SB_ESTORE, never a crash.
*/
#ifndef SB_CODEC_H
#define SB_CODEC_H

#include "internal.h"

#include <string.h>

typedef struct rbuf {
    const uint8_t *p, *end;
    int err;
} rbuf;

static inline void rb_init(rbuf *r, const void *p, size_t n)
{
    r->p = p;
    r->end = r->p + n;
    r->err = 0;
}

static inline int rb_take(rbuf *r, void *dst, size_t n)
{
    if (r->err || (size_t)(r->end - r->p) < n) {
        r->err = 1;
        memset(dst, 0, n);
        return -1;
    }
    memcpy(dst, r->p, n);
    r->p += n;
    return 0;
}

static inline uint8_t rb_u8(rbuf *r)
{
    uint8_t v;
    rb_take(r, &v, 1);
    return v;
}
static inline uint32_t rb_u32(rbuf *r)
{
    uint32_t v;
    rb_take(r, &v, 4);
    return v;
}
static inline int32_t rb_i32(rbuf *r)
{
    int32_t v;
    rb_take(r, &v, 4);
    return v;
}
static inline int64_t rb_i64(rbuf *r)
{
    int64_t v;
    rb_take(r, &v, 8);
    return v;
}
static inline double rb_f64(rbuf *r)
{
    double v;
    rb_take(r, &v, 8);
    return v;
}
/* A string pointing into the record (not terminated). */
static inline const char *rb_strp(rbuf *r, size_t *len)
{
    uint32_t n = rb_u32(r);
    if (r->err || (size_t)(r->end - r->p) < n) {
        r->err = 1;
        *len = 0;
        return "";
    }
    const char *s = (const char *)r->p;
    r->p += n;
    *len = n;
    return s;
}
/* A string copied into dst (cap bytes with the terminator); too long is an error. */
static inline void rb_str(rbuf *r, char *dst, size_t cap)
{
    size_t n;
    const char *s = rb_strp(r, &n);
    if (n >= cap || memchr(s, 0, n)) {
        r->err = 1;
        n = 0;
    }
    memcpy(dst, s, n);
    dst[n] = 0;
}

/* Writers append to an sb_buf; `err` on the buffer is its allocation state. */
typedef struct wbuf {
    sb_buf b;
    int err;
} wbuf;

static inline void wb_put(wbuf *w, const void *p, size_t n)
{
    if (w->b.len + n < w->b.cap) { /* the common case: room already */
        memcpy(w->b.p + w->b.len, p, n);
        w->b.len += n;
        return;
    }
    if (!w->err && buf_put(&w->b, p, n)) w->err = 1;
}
static inline void wb_u8(wbuf *w, uint8_t v)
{
    wb_put(w, &v, 1);
}
static inline void wb_u32(wbuf *w, uint32_t v)
{
    wb_put(w, &v, 4);
}
static inline void wb_i32(wbuf *w, int32_t v)
{
    wb_put(w, &v, 4);
}
static inline void wb_i64(wbuf *w, int64_t v)
{
    wb_put(w, &v, 8);
}
static inline void wb_f64(wbuf *w, double v)
{
    wb_put(w, &v, 8);
}
static inline void wb_strn(wbuf *w, const char *s, size_t n)
{
    wb_u32(w, (uint32_t)n);
    wb_put(w, s, n);
}
static inline void wb_str(wbuf *w, const char *s)
{
    wb_strn(w, s ? s : "", s ? strlen(s) : 0);
}
static inline void wb_reset(wbuf *w)
{
    w->b.len = 0;
    w->err = 0;
}

#endif
