/*
** stdio_shadow.c — stdin/stdout/stderr for the Lua 5.4 linked into the module.
**
** Debian's liblua5.4.a is compiled as position-independent *executable* code:
** it reads the stdio variables PC-relative, counting on the copy relocations
** only an executable gets, which a shared object cannot have. build.mk renames
** those three references in its copy of the archive to the variables below,
** which hold the same FILE pointers, set when the module is loaded. (The
** engine's own Lua never does stdio; lauxlib's error writer is the only user.)
*/
#include <stdio.h>

FILE *sblua_stdin, *sblua_stdout, *sblua_stderr;

__attribute__((constructor)) static void sblua_stdio_init(void)
{
    sblua_stdin = stdin;
    sblua_stdout = stdout;
    sblua_stderr = stderr;
}
