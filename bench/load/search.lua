-- (c) GET /api/search?q=<word>: a random user (tokens.txt) and a random topic word of
-- the seeded corpus (words.txt), so the search cache (user + query) mostly misses.
local common = dofile(os.getenv("RRA_LOAD_LUA") .. "/common.lua")
local tokens, words

function init(args)
  common.seed()
  tokens = common.lines("tokens.txt")
  words = common.lines("words.txt")
end

function request()
  local word = words[math.random(#words)]
  return common.get("/api/search?q=" .. word, tokens[math.random(#tokens)])
end
