/*
** utf8.c — see utf8.h.
*/
#include "utf8.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t sbd_utf8_char(const unsigned char *s, size_t n)
{
    if (!n) return 0;
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, cp = c & 0x07;
    else
        return 0;
    if (n < len) return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[k] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

int sbd_valid_utf8(const unsigned char *s, size_t n)
{
    for (size_t i = 0, k; i < n; i += k)
        if (!(k = sbd_utf8_char(s + i, n - i))) return 0;
    return 1;
}

char *sbd_utf8_fix(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(3 * n + 1), *o = out;
    if (!out) return NULL;
    for (const unsigned char *p = (const unsigned char *)s; n;) {
        size_t k = sbd_utf8_char(p, n);
        if (k) {
            memcpy(o, p, k);
            o += k;
        } else {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3;
            k = 1;
        }
        p += k;
        n -= k;
    }
    *o = 0;
    return out;
}

size_t sbd_utf8_vformat(char *buf, size_t n, const char *fmt, va_list ap)
{
    if (!n) return 0;
    int w = vsnprintf(buf, n, fmt, ap);
    if (w < 0) {
        buf[0] = 0;
        return 0;
    }
    size_t len = (size_t)w;
    if (len < n) return len;
    /* Cut: back over the continuation bytes at the end to the character
    ** they belong to, and drop it if it is not whole. */
    len = n - 1;
    size_t j = len, back = 0;
    while (j > 0 && back < 3 && ((unsigned char)buf[j - 1] & 0xc0) == 0x80)
        j--, back++;
    if (j > 0) {
        unsigned char lead = (unsigned char)buf[j - 1];
        size_t want = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
        if (want > 1 && len - (j - 1) < want) len = j - 1;
    }
    buf[len] = 0;
    return len;
}
