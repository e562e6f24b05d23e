/*
** test_result_wipe.c — what a result lets go is wiped first, where the
** C library's allocator alone can see it. Its message and field, which may
** quote an id a caller gave (a gateway's ids may be numbers: "no such
** account '+442079460001'"), leave no copy behind when a longer message
** makes their buffer grow (realloc would free the block before as it was).
** An access request's answer as JSON, which the export makes as its text
** (res_doc_text) with the number in it, is wiped when the result is reused
** or freed; test_records watches jansson's free, which never sees it.
** What res_err and buf_printf format on the stack first is wiped there
** before they return: the stack below is searched for it at once. Every
** block jansson frees (an event's document parsed, an embedder's own) is
** wiped by the engine's allocator for it.
**
** realloc and free are replaced here, for the whole process, by ones that
** note each block they are handed holding the watched digits before they
** pass it on to the C library's. Not in a sanitizer build, whose runtime
** has an allocator of its own.
*/
#include "switchboard.h"
#include "crypto.h"   /* cr_wipe */
#include "internal.h" /* res_err, buf_printf */
#include "tap.h"
#include "testkit.h"

#include <jansson.h>
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
#include "freewatch.h"

static const char *watched; /* digits looked for; NULL: not watching */
static int handed_unwiped;  /* blocks realloc or free was handed with them in */

static void watch(void *p)
{
    if (watched && p && memmem(p, malloc_usable_size(p), watched, strlen(watched)))
        handed_unwiped++;
}

/* Does the stack below the caller's frame, where the frames of the call it
** made just now were, still hold digits? Read through a frame of
** its own, left as that call left it (the asm says it was written, so the
** compiler neither warns of nor assumes anything about its bytes). */
static __attribute__((noinline)) int stack_holds(const char *digits)
{
    char probe[256 * 1024];
    __asm__ volatile("" : "=m"(probe));
    return memmem(probe, sizeof probe, digits, strlen(digits)) != NULL;
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
    /* The message is formatted on the stack first (res_err), and a page
    ** of an access request starts there too (buf_printf): neither leaves
    ** the number behind when it returns. Looked for at once, before any
    ** other call's frames overwrite where theirs were. Both are called
    ** themselves: an engine call that answers "no such account" has looked
    ** the id up first, and the keys it looked it up with stay on the stack
    ** (they would be found whatever res_err did), and an export's later
    ** calls write over where the page's start was made. */
    r = sb_result_new();
    rc = res_err(r, SB_ENOTFOUND, "account", "no such account '%s'", "+442079460003");
    int left = stack_holds("442079460003");
    ok(rc == SB_ENOTFOUND && strstr(sb_result_message(r), "+442079460003"),
       "an error quoting a number (%s)", sb_result_message(r));
    ok(!left, "... its message, formatted on the stack, was wiped there");
    sb_buf page = {.wipe = 1}; /* as the export makes a page */
    rc = buf_printf(&page, "{\"number\":\"%s\",\"records\":[", "+442079460004");
    left = stack_holds("442079460004");
    ok(!rc && strstr(page.p, "+442079460004"), "the start of an access request's page");
    ok(!left, "... formatted on the stack, was wiped there");
    cr_wipe(page.p, page.cap);
    buf_free(&page);
    sb_result_free(r);
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
    /* jansson's own blocks: an event's document parsed (its strings, the
    ** lexer's buffer) are freed through the engine's allocator for jansson,
    ** which wipes each block, the embedder's own documents' too (jansson
    ** has one allocator in a process). */
    r = sb_result_new();
    watched = "442079460005";
    handed_unwiped = 0;
    const char *offer = "{\"type\":\"offer\",\"call\":\"w1\",\"queue\":\"nowhere\","
                        "\"caller\":\"+442079460005\"}";
    rc = sb_submit_json(e, "acme", offer, strlen(offer), r);
    ok(rc == SB_ENOTFOUND, "an offer of +442079460005 to a queue that is not there (%s)",
       sb_result_message(r));
    sb_result_free(r);
    json_t *mine = json_pack("{s:s}", "caller", "+442079460005");
    char *text = json_dumps(mine, JSON_COMPACT);
    json_decref(mine);
    json_t *back = text ? json_loads(text, 0, NULL) : NULL;
    if (text) cr_wipe(text, strlen(text)); /* json_dumps's: the caller's to free */
    free(text);
    json_decref(back);
    watched = NULL;
    is_int(handed_unwiped, 0, "... no block jansson freed holding the number");
    sb_close(e);
    sb_result_free(res);
    rmtree(dir);
    return done_testing();
#endif
}
