/*
** freewatch.h — realloc and free replaced for the whole process: each block
** they are handed goes to the includer's watch(p) first (to look in it for
** what should have been wiped), then to the C library's. For
** test_result_wipe.c and tests/daemon/freewatch.c (preloaded into the
** daemon). Not for a sanitizer build, whose runtime has its own allocator.
*/
#ifndef SB_FREEWATCH_H
#define SB_FREEWATCH_H

#include <stddef.h>

extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);

static void watch(void *p);

void *realloc(void *p, size_t n)
{
    watch(p);
    return __libc_realloc(p, n);
}

void free(void *p)
{
    watch(p);
    __libc_free(p);
}

#endif
