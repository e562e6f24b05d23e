-- keyrot.lua — sb.master_key_rotate, run by lua51.t (LuaJIT, lua5.1) and
-- lua54.t (lua5.4): a data directory made through the binding, refused while
-- an engine has it open and for bad input (nil, message, code, field; nothing
-- changed), then rotated to a key it makes: the old key no longer opens it,
-- the new one finds its records and the API key made before.
-- Run from the repository root (the stock policies in policies/).
local T = require "tap"
local sb = require "switchboard"

local dir = T.tmpdir()
local data = dir .. "/data"
local old, new = data .. "/master.key", dir .. "/new.key"

local function exists(p)
  local f = io.open(p, "rb")
  if f then f:close() end
  return f ~= nil
end
local function write(p, s)
  local f = assert(io.open(p, "wb"))
  f:write(s)
  f:close()
end
-- The refusal: nil, a message holding want_msg, want_code, want_field.
local function fails(want_code, want_field, want_msg, label, res, m, c, f)
  T.ok(res == nil and c == want_code and f == want_field and type(m) == "string"
       and m:find(want_msg, 1, true) ~= nil,
       label .. " -> nil, " .. tostring(m) .. ", " .. tostring(c) .. ", " .. tostring(f))
end

local eng = assert(sb.open{ data_dir = data, policy_dir = "policies", sync = "none",
                            clock = 1767603600000, log = "none" })
T.three_agents(eng)
assert(eng:submit("acme", { type = "offer", call = "c1", queue = "q", caller = "+442079460001" }))
assert(eng:submit("acme", { type = "abandon", call = "c1" }))
local api = assert(eng:apikey_create("acme")).key
local before = sb.json_encode(assert(eng:records_list("acme")))
local keys = T.read(data .. "/data.keys")
local function unchanged(what)
  T.ok(T.read(data .. "/data.keys") == keys and not exists(new),
       "... " .. what .. ": data.keys unchanged, no new key made")
end

fails(sb.EBUSY, "data_dir", "open in this process by another engine",
      "master_key_rotate while an engine has the directory open",
      sb.master_key_rotate{ data_dir = data, new_key_file = new, log = "none" })
unchanged("in use")
eng:close()

local other = dir .. "/other.key"
write(other, string.rep("ab", 32) .. "\n")
os.execute("chmod 600 '" .. other .. "'")
fails(sb.ECRYPTO, "key_file", "is not the one this data directory",
      "an old key that is not the directory's",
      sb.master_key_rotate{ data_dir = data, key_file = other, new_key_file = new, log = "none" })
unchanged("a wrong old key")
local nowhere = dir .. "/no-such-dir/new.key"
fails(sb.ECRYPTO, "new_key_file", nowhere, "a new key file where none can be made",
      sb.master_key_rotate{ data_dir = data, new_key_file = nowhere, log = "none" })
unchanged("a bad new key path")
os.execute("chmod 644 '" .. other .. "'")
fails(sb.EINVAL, "new_key_file", "mode 0644", "a new key file others may read",
      sb.master_key_rotate{ data_dir = data, new_key_file = other, log = "none" })
unchanged("a loose new key")
fails(sb.EINVAL, "new_key_file", "is the key file in use", "the key in use as the new key",
      sb.master_key_rotate{ data_dir = data, new_key_file = old, log = "none" })
unchanged("the same key")
fails(sb.EINVAL, "new_key_file", "no new key file given", "no new_key_file",
      sb.master_key_rotate{ data_dir = data, log = "none" })
fails(sb.EINVAL, "log", "no engine is left", 'log = "buffer"',
      sb.master_key_rotate{ data_dir = data, new_key_file = new, log = "buffer" })
fails(sb.EINVAL, "log_level", "log_level must be", "an unknown log_level",
      sb.master_key_rotate{ data_dir = data, new_key_file = new, log_level = "loud" })
T.raises(function() sb.master_key_rotate{ data_dir = data, new_key_file = new, colour = "red" } end,
         "switchboard.master_key_rotate: unknown option 'colour'", "an unknown option raises")
T.raises(function() sb.master_key_rotate{ data_dir = data, new_key_file = new .. "\0x" } end,
         "switchboard.master_key_rotate: new_key_file holds a NUL byte", "a NUL byte in a path raises")
T.raises(function() sb.master_key_rotate(data) end, "bad argument #1 to 'switchboard.master_key_rotate'",
         "a path instead of the options table raises")
unchanged("bad options")
fails(sb.EINVAL, "data_dir", "holds no data", "a data directory that does not exist",
      sb.master_key_rotate{ data_dir = dir .. "/nothing", new_key_file = new, log = "none" })
T.ok(not exists(dir .. "/nothing"), "... and it was not made")

local lines = {}
local r, m = sb.master_key_rotate{ data_dir = data, new_key_file = new,
                                   log = function(level, line) lines[#lines + 1] = level .. " " .. line end }
T.ok(r and r.data_dir == data and r.key_file == new and r.old_key_file == old and r.new_key_made == true
     and r.accounts == 1 and r.slots_dropped == 0,
     "master_key_rotate: the engine's answer as a table (the new key made, one account) " ..
     (r and sb.json_encode(r) or tostring(m)))
T.ok(r and type(r.backups) == "string" and r.backups:find("old key", 1, true) and r.actions == nil,
     "... with the reminder about backups, and no actions")
local logged = false
for _, l in ipairs(lines) do logged = logged or l:find("^info master key rotated") ~= nil end
T.ok(logged, "... its log line given to the log function")
local p = io.popen("stat -c '%a %s' '" .. new .. "'")
local st = p:read("*l")
p:close()
T.is(st, "600 65", "the new key made: mode 0600, 64 hex digits")
T.ok(T.read(data .. "/data.keys") ~= keys and not exists(data .. "/data.keys.rotate"),
     "data.keys written again, nothing left beside it")

local e, em, ec, ef = sb.open{ data_dir = data, sync = "none", log = "none" }
T.ok(e == nil and ec == sb.ECRYPTO and type(em) == "string"
     and em:find("is not the one this data directory", 1, true) ~= nil,
     "the old key no longer opens it -> nil, " .. tostring(em) .. ", " .. tostring(ec) .. ", " .. tostring(ef))
eng = assert(sb.open{ data_dir = data, key_file = new, sync = "none", log = "none" })
T.is(sb.json_encode(assert(eng:records_list("acme"))), before, "the new key opens it: the same records")
T.is(eng:apikey_verify("acme", api), true, "... and the API key made before verifies")
T.is(eng:apikey_verify("acme", api .. "x"), false, "... and another still does not")
eng:close()
T.done()
