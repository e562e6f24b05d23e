-- tap.lua — a tiny TAP emitter for the binding's tests, the same in Lua 5.1,
-- LuaJIT and 5.4. Lines carry no numbers: the .t driver runs these scripts
-- under several hosts and prints the plan once, at the end.
local T = {}
local failed = 0

function T.ok(cond, name)
  if not cond then failed = failed + 1 end
  io.write(cond and "ok - " or "not ok - ", (name:gsub("\n", " ")), "\n")
  io.flush()
  return cond
end

function T.diag(...)
  local parts = {}
  for i = 1, select("#", ...) do parts[#parts + 1] = tostring((select(i, ...))) end
  io.write("# ", (table.concat(parts, " "):gsub("\n", "\n# ")), "\n")
end

function T.is(got, want, name)
  local r = T.ok(got == want, name)
  if not r then T.diag("  got: " .. tostring(got) .. "  want: " .. tostring(want)) end
  return r
end

function T.like(got, pattern, name)
  local r = T.ok(type(got) == "string" and got:find(pattern) ~= nil, name)
  if not r then T.diag("  got: " .. tostring(got) .. "  want match: " .. pattern) end
  return r
end

-- Call f, expecting it to raise an error matching pattern.
function T.raises(f, pattern, name)
  local okk, err = pcall(f)
  local r = T.ok(not okk and tostring(err):find(pattern) ~= nil, name)
  if not r then T.diag("  got: " .. tostring(okk) .. " " .. tostring(err)) end
  return r
end

-- The exit status the driver reads: 0 when every test passed. The
-- directories T.tmpdir made go first, also those of a script that does not
-- call T.cleanup itself.
function T.done()
  T.cleanup()
  os.exit(failed == 0 and 0 or 1)
end

-- A fresh, empty directory; removed by T.cleanup().
local dirs = {}
function T.tmpdir()
  local p = os.tmpname()
  os.remove(p)
  local base = os.getenv("SB_LUA_TMP") -- the driver's, removed when it ends
  if base then p = base .. "/" .. p:match("[^/]+$") end
  assert(os.execute("mkdir -m 700 '" .. p .. "'"))
  dirs[#dirs + 1] = p
  return p
end

function T.cleanup()
  for _, d in ipairs(dirs) do os.execute("rm -rf '" .. d .. "'") end
end

function T.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

-- Account acme with agents a1..a3 (available, a softphone each) in queue q,
-- routed by the stock longest-idle policy.
function T.three_agents(eng)
  assert(eng:account_put{ id = "acme" })
  for a = 1, 3 do
    assert(eng:agent_put("acme", { id = "a" .. a, status = "available",
                                   devices = { softphone = "sip:a" .. a .. "@x" } }))
  end
  assert(eng:queue_put("acme", { id = "q", policy = "longest-idle",
                                 members = { { agent = "a1" }, { agent = "a2" }, { agent = "a3" } } }))
end

-- Garbage with a finalizer (5.1 and LuaJIT finalize userdata only).
function T.garbage_with(fn)
  if newproxy then
    getmetatable(newproxy(true)).__gc = fn
  else
    setmetatable({}, { __gc = fn })
  end
end

return T
