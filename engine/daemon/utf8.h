/*
** utf8.h — UTF-8 as the daemon meets it in what clients send: checked, cut
** between characters, and its stray bytes replaced (for JSON) or escaped
** (for the log).
*/
#ifndef SBD_UTF8_H
#define SBD_UTF8_H

#include <stdarg.h>
#include <stddef.h>

/* The length (1 to 4) of the UTF-8 character s[0..n) begins with, or 0 when
** it begins with none: a stray byte, an overlong form, a surrogate, a code
** point past U+10FFFF, or a character cut short by n. */
size_t sbd_utf8_char(const unsigned char *s, size_t n);

/* Is s[0..n) valid UTF-8? */
int sbd_valid_utf8(const unsigned char *s, size_t n);

/* s (NUL-terminated) with each byte that is no part of a UTF-8 character
** replaced by U+FFFD, newly allocated; NULL when memory runs out. */
char *sbd_utf8_fix(const char *s);

/* vsnprintf into buf, a text cut to fit ending between characters, not in
** the middle of one. Returns the length written. */
size_t sbd_utf8_vformat(char *buf, size_t n, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#endif
