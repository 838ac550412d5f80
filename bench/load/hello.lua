-- (e) the ceiling: GET /bench/hello, the bare Django view of bench/load_urls.py.
local common = dofile(os.getenv("RRA_LOAD_LUA") .. "/common.lua")
local req

function init(args)
  req = common.get("/bench/hello")
end

function request()
  return req
end
