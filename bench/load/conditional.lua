-- (a') conditional GET /api/chats: each user sends If-None-Match with the ETag of their
-- list (etags.txt: token <tab> ETag, fetched by load.py just before), expecting 304.
local common = dofile(os.getenv("RRA_LOAD_LUA") .. "/common.lua")
local reqs, i

function init(args)
  reqs = {}
  for n, line in ipairs(common.lines("etags.txt")) do
    local f = common.fields(line)
    reqs[n] = common.get("/api/chats", f[1], { ["If-None-Match"] = f[2] })
  end
  i = ((thread_no or 1) * 997) % #reqs
end

function request()
  i = i % #reqs + 1
  return reqs[i]
end
