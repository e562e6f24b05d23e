/*
** test_result_wipe.c — a result's message and field, which may quote an id
** a caller gave (a gateway's ids may be numbers: "no such account
** '+442079460001'"), leave no copy behind when a longer message makes their
** buffer grow. sb_result_free wipes them to their capacity, but a buffer
** grown with realloc let the block before go as it was.
**
** realloc is replaced here, for the whole process, by one that notes each
** block it is handed holding the watched digits (a block realloc may free
** as it is) before it passes it on to the C library's. Not in a sanitizer
** build, whose runtime has realloc of its own.
*/
#include "switchboard.h"
#include "tap.h"
#include "testkit.h"

#include <malloc.h>
#include <string.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define OWN_REALLOC 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define OWN_REALLOC 0
#endif
#endif
#ifndef OWN_REALLOC
#define OWN_REALLOC 1
#endif

#if OWN_REALLOC
extern void *__libc_realloc(void *p, size_t n);

static const char *watched; /* digits looked for; NULL: not watching */
static int handed_unwiped;  /* blocks realloc was handed with them in */

void *realloc(void *p, size_t n)
{
    if (watched && p && memmem(p, malloc_usable_size(p), watched, strlen(watched)))
        handed_unwiped++;
    return __libc_realloc(p, n);
}
#endif

int main(void)
{
#if !OWN_REALLOC
    printf("1..0 # SKIP the sanitizer's runtime has its own realloc\n");
    return 0;
#else
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/sb-result-wipe-%d", (int)getpid());
    rmtree(dir);
    sb_result *res = sb_result_new();
    sb_config cfg;
    test_engine_config(&cfg, dir, NULL, 8 << 20);
    sb_engine *e = test_open(&cfg, res);
    ok(e != NULL, "an engine");
    const char *acct = "{\"id\":\"acme\"}";
    ok(e && sb_account_put(e, acct, strlen(acct), res) == 0, "account acme");
    sb_result *r = sb_result_new();
    watched = "442079460001";
    handed_unwiped = 0;
    int rc = sb_account_get(e, "+442079460001", r);
    ok(rc == SB_ENOTFOUND && strstr(sb_result_message(r), "+442079460001"),
       "an account id that is a number, not found: the message quotes it (%s)",
       sb_result_message(r));
    /* Longer than the first: the message's buffer grows. */
    rc = sb_account_get(e, "not an id", r);
    ok(rc == SB_ENOTFOUND && strlen(sb_result_message(r)) > 64 &&
           !strstr(sb_result_message(r), "7946"),
       "a longer message in the same result (%zu bytes)", strlen(sb_result_message(r)));
    sb_result_free(r);
    watched = NULL;
    is_int(handed_unwiped, 0, "... the buffer the first message was in was wiped as it grew");
    sb_close(e);
    sb_result_free(res);
    rmtree(dir);
    return done_testing();
#endif
}
