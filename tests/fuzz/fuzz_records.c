/*
** fuzz_records.c — the decoders of stored records (model.c): a truncated,
** corrupted or hostile value must decode to SB_ESTORE, never crash or read
** out of bounds.
**
** Input: one selector byte (% 6: account, agent, queue, member, avail,
** call), then the stored value. A value that decodes must also re-encode
** and decode again to the same encoding (the decoders accept nothing the
** encoders cannot write back).
*/
#include "fuzz.h"
#include "model.h"

static union {
    acct_rec account;
    agent_rec agent;
    queue_rec queue;
    member_rec member;
    avail_rec avail;
    call_rec call;
} r1, r2;

static int decode(int kind, const void *p, size_t n, void *out)
{
    switch (kind) {
    case 0:
        return dec_account(p, n, out);
    case 1:
        return dec_agent(p, n, out);
    case 2:
        return dec_queue(p, n, out);
    case 3:
        return dec_member(p, n, out);
    case 4:
        return dec_avail(p, n, out);
    default:
        return dec_call(p, n, out);
    }
}

static void encode(int kind, wbuf *w, const void *in)
{
    wb_reset(w);
    switch (kind) {
    case 0:
        enc_account(w, in);
        break;
    case 1:
        enc_agent(w, in);
        break;
    case 2:
        enc_queue(w, in);
        break;
    case 3:
        enc_member(w, in);
        break;
    case 4:
        enc_avail(w, in);
        break;
    default:
        enc_call(w, in);
        break;
    }
}

static void release(int kind, void *r)
{
    if (kind == 1) agent_free(r);
    if (kind == 5) call_free(r);
}

static const char *const names[] = {"account", "agent", "queue", "member", "avail", "call"};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int kind = data[0] % 6;
    /* A copy of exactly the value's size, so ASan sees any read past it. */
    size_t n = size - 1;
    uint8_t *v = malloc(n ? n : 1);
    memcpy(v, data + 1, n);
    memset(&r1, 0, sizeof r1);
    memset(&r2, 0, sizeof r2);
    int rc = decode(kind, v, n, &r1);
    if (rc != 0 && rc != SB_ESTORE) {
        fprintf(stderr, "dec_%s returned %d, not 0 or SB_ESTORE\n", names[kind], rc);
        abort();
    }
    if (rc == 0) {
        wbuf w1 = {{0}, 0}, w2 = {{0}, 0};
        encode(kind, &w1, &r1);
        if (w1.err) abort();
        if (decode(kind, w1.b.p, w1.b.len, &r2) != 0) {
            fprintf(stderr, "dec_%s refused what enc_%s wrote\n", names[kind], names[kind]);
            abort();
        }
        encode(kind, &w2, &r2);
        if (w1.b.len != w2.b.len || memcmp(w1.b.p, w2.b.p, w1.b.len) != 0) {
            fprintf(stderr, "%s: re-encoding is not stable\n", names[kind]);
            abort();
        }
        buf_free(&w1.b);
        buf_free(&w2.b);
    }
    release(kind, &r1);
    release(kind, &r2);
    free(v);
    return 0;
}
