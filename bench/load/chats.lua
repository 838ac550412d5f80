-- (a) and (b): GET /api/chats, each request as the next user of tokens.txt (one API
-- token per line), so the requests spread over every user's chat list.
local common = dofile(os.getenv("RRA_LOAD_LUA") .. "/common.lua")
local reqs, i

function init(args)
  reqs = {}
  for n, token in ipairs(common.lines("tokens.txt")) do
    reqs[n] = common.get("/api/chats", token)
  end
  i = ((thread_no or 1) * 997) % #reqs -- threads start at different users
end

function request()
  i = i % #reqs + 1
  return reqs[i]
end
