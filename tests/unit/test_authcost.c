/*
** test_authcost.c — a refused API key costs the same work whether its
** account exists or not, so the time of a 401 does not tell which account
** ids exist (API.md: another account's ids are indistinguishable from ids
** that do not exist). Counted, not timed: the hashes sb_apikey_verify
** computes, through libsodium's crypto_generichash_final, which this
** program interposes.
*/
#include "switchboard.h"
#include "tap.h"
#include "testkit.h"

#include <dlfcn.h>
#include <jansson.h>
#include <sodium.h>

static int hashes;

int crypto_generichash_final(crypto_generichash_state *state, unsigned char *out, size_t outlen)
{
    static int (*real)(crypto_generichash_state *, unsigned char *, size_t);
    if (!real) *(void **)&real = dlsym(RTLD_NEXT, "crypto_generichash_final");
    hashes++;
    return real(state, out, outlen);
}

/* The hashes one verification computes, and its answer in *rc. */
static int cost(sb_engine *e, const char *account, const char *key, int *rc)
{
    hashes = 0;
    *rc = sb_apikey_verify(e, account, key, strlen(key));
    return hashes;
}

int main(void)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/sb-test-authcost-%d", (int)getpid());
    sb_result *res = sb_result_new();
    sb_config cfg;
    test_engine_config(&cfg, dir, NULL, 4 << 20);
    sb_engine *e = test_open(&cfg, res);
    if (!ok(e != NULL, "engine opened")) return done_testing();
    ok(sb_account_put(e, "{\"id\":\"acme\"}", 13, res) == 0 &&
           sb_apikey_create(e, "acme", res) == 0,
       "account acme with one API key");
    json_t *k = json_loads(sb_result_json(res, NULL), 0, NULL);
    char key[128];
    snprintf(key, sizeof key, "%s", json_string_value(json_object_get(k, "key")));
    json_decref(k);
    ok(sb_account_put(e, "{\"id\":\"bare\"}", 13, res) == 0, "account bare with no key");

    int rc, good = cost(e, "acme", key, &rc);
    ok(rc == 0 && good >= 1, "acme's key verifies (%d hashes)", good);
    int wrong = cost(e, "acme", "sbk_wrong", &rc);
    ok(rc == SB_EAUTH, "a wrong key for acme is refused");
    int ghost = cost(e, "ghost", "sbk_wrong", &rc);
    ok(rc == SB_EAUTH, "any key for an account that does not exist is refused");
    int bare = cost(e, "bare", "sbk_wrong", &rc);
    ok(rc == SB_EAUTH, "any key for an account without keys is refused");
    is_int(ghost, wrong, "an unknown account costs what a wrong key of a real one does");
    is_int(bare, wrong, "so does an account without keys");
    is_int(wrong, good, "and a wrong key what a right one does");
    sb_close(e);
    sb_result_free(res);
    rmtree(dir);
    return done_testing();
}
