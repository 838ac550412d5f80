-- (s) GET /api/chats as the PWA reads it: with a signed-in browser's cookies (session,
-- CSRF and viewer cookies; one session per user, sessions.txt), rotating over the users
-- like chats.lua.
local common = dofile(os.getenv("RRA_LOAD_LUA") .. "/common.lua")
local reqs, i

function init(args)
  reqs = {}
  for n, cookie in ipairs(common.lines("sessions.txt")) do
    reqs[n] = common.get("/api/chats", nil, { ["Cookie"] = cookie })
  end
  i = ((thread_no or 1) * 997) % #reqs -- threads start at different users
end

function request()
  i = i % #reqs + 1
  return reqs[i]
end
