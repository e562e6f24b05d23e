/*
** test_result_wipe.c — what a result lets go is wiped first, where the
** C library's allocator alone can see it. Its message and field, which may
** quote an id a caller gave (a gateway's ids may be numbers: "no such
** account '+442079460001'"), leave no copy behind when a longer message
** makes their buffer grow (realloc would free the block before as it was).
** An access request's answer as JSON, which the export makes as its text
** (res_doc_text) with the number in it, is wiped when the result is reused
** or freed; test_records watches jansson's free, which never sees it.
**
** realloc and free are replaced here, for the whole process, by ones that
** note each block they are handed holding the watched digits before they
** pass it on to the C library's. Not in a sanitizer build, whose runtime
** has an allocator of its own.
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
extern void __libc_free(void *p);

static const char *watched; /* digits looked for; NULL: not watching */
static int handed_unwiped;  /* blocks realloc or free was handed with them in */

static void watch(void *p)
{
    if (watched && p && memmem(p, malloc_usable_size(p), watched, strlen(watched)))
        handed_unwiped++;
}

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

int main(void)
{
#if !OWN_REALLOC
    printf("1..0 # SKIP the sanitizer's runtime has its own allocator\n");
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
    /* An access request's answer as JSON is its text, made by the export
    ** (res_doc_text), with the number asked for in it even when nothing
    ** is found: gone wiped when the result is reused and when it is freed. */
    r = sb_result_new();
    watched = "442079460002";
    handed_unwiped = 0;
    rc = sb_records_export(e, "acme", "+442079460002", SB_EXPORT_JSON, r);
    int shown = !rc && strstr(sb_result_json(r, NULL), "442079460002");
    rc |= sb_records_export_page(e, "acme", "+442079460002", SB_EXPORT_JSON, NULL, 10, 0, r);
    shown &= !rc && strstr(sb_result_json(r, NULL), "442079460002") != NULL;
    sb_account_get(e, "acme", r); /* another document in its place */
    sb_result_free(r);
    watched = NULL;
    ok(shown, "an access request's answer, then a page's, in one result");
    is_int(handed_unwiped, 0, "... each answer's text wiped before it was freed");
    sb_close(e);
    sb_result_free(res);
    rmtree(dir);
    return done_testing();
#endif
}
