-- luacheck configuration for Switchboard policies:
--   luacheck --config policies/.luacheckrc policies
-- Policies are Lua 5.4 run in a sandbox: no globals of their own (every
-- name is a local), and no I/O, no OS, no loading of code, so those
-- libraries are flagged as undefined. The hooks' arguments (call, agents,
-- ctx) are fixed by the contract, so a policy that ignores some is fine.
std = "lua54"
globals = {}
-- os.time and os.date are there (dates for keep_until); the rest of os is not.
read_globals = { os = { fields = { "time", "date" } } }
not_globals = { "io", "package", "debug", "require", "dofile", "loadfile", "load" }
unused_args = false
max_line_length = 100
