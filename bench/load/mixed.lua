-- (d) and the soak: a mix of what people do, with the rate limits on.
--   70 % GET /api/chats            a random user's chat list
--   15 % GET /api/chats/<id>       one of that user's chats with its messages
--   10 % GET /api/search?q=<word>  a random user, a random topic word
--    5 % POST /api/documents       the same small upload, always by one user (hammer.txt),
--                                  so the upload limit (UPLOAD_RATE, 5/min) answers 429:
--                                  the intended 429s. No chat question is posted (an
--                                  answer would embed the question and call the LLM).
local common = dofile(os.getenv("RRA_LOAD_LUA") .. "/common.lua")
local LIST, DETAIL, SEARCH = 0.70, 0.85, 0.95 -- cumulative shares; the rest uploads
local tokens, lists, chats, words, upload

function init(args)
  common.seed()
  tokens = common.lines("tokens.txt")
  words = common.lines("words.txt")
  lists = {}
  for n, token in ipairs(tokens) do
    lists[n] = common.get("/api/chats", token)
  end
  chats = {}
  for n, line in ipairs(common.lines("chats.txt")) do
    local f = common.fields(line)
    chats[n] = common.get("/api/chats/" .. f[2], f[1])
  end
  upload = wrk.format("POST", "/api/documents", {
    ["Accept"] = "application/json",
    ["Accept-Encoding"] = common.ACCEPT_ENCODING,
    ["Authorization"] = "Bearer " .. common.lines("hammer.txt")[1],
    ["Content-Type"] = common.lines("upload.type")[1],
  }, common.read("upload.bin"))
end

function request()
  local r = math.random()
  if r < LIST then
    return lists[math.random(#lists)]
  elseif r < DETAIL then
    return chats[math.random(#chats)]
  elseif r < SEARCH then
    return common.get("/api/search?q=" .. words[math.random(#words)], tokens[math.random(#tokens)])
  end
  return upload
end
