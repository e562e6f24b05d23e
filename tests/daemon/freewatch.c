/*
** freewatch.c — an LD_PRELOAD shim for page_wipe.t: every block the daemon
** hands to free or realloc is searched, within its usable size, for each of
** the texts in SB_FREEWATCH (up to eight, separated by '|') before the C
** library's takes it, and a line is appended to the file SB_FREEWATCH_LOG
** for each found: the index of the text. What a process lets go of unwiped
** is what a later allocation, a core dump or a read of its memory finds;
** libevent's buffers, jansson's and the engine's are all freed through
** here. Not for a sanitizer build, whose runtime has its own allocator.
*/
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "freewatch.h"

#define TEXTS 8 /* at most */

static void watch(void *p)
{
    /* Read once; getenv allocates nothing, and free may be called early. */
    static int ready, nt, fd = -1;
    static const char *text[TEXTS];
    static size_t len[TEXTS];
    if (!ready) {
        ready = 1;
        const char *w = getenv("SB_FREEWATCH"), *log = getenv("SB_FREEWATCH_LOG");
        if (!w || !log) return;
        fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        for (const char *s = w; *s && nt < TEXTS;) {
            const char *bar = strchr(s, '|');
            text[nt] = s;
            len[nt] = bar ? (size_t)(bar - s) : strlen(s);
            nt++;
            s += len[nt - 1] + (bar != NULL);
        }
    }
    if (!p || fd < 0) return;
    size_t n = malloc_usable_size(p);
    for (int i = 0; i < nt; i++)
        if (len[i] && memmem(p, n, text[i], len[i])) {
            char line[16];
            int k = snprintf(line, sizeof line, "%d\n", i);
            if (write(fd, line, (size_t)k) < 0) return;
        }
}
