-- Shared by the scenario scripts of bench/load.py, which load it with
--   local common = dofile(os.getenv("RRA_LOAD_LUA") .. "/common.lua")
-- It reads the data files load.py wrote (folder RRA_LOAD_DATA), counts the responses
-- of each thread by status, and prints one line that load.py parses:
--   RRA_RESULT requests=.. duration_us=.. p50=.. p95=.. p99=.. ... status=200:123,429:4
-- Latencies are in microseconds, from wrk's own histogram (send to last byte).

local common = {}
local data = os.getenv("RRA_LOAD_DATA") or "."

function common.path(name)
  return data .. "/" .. name
end

-- The non-empty lines of a data file.
function common.lines(name)
  local out = {}
  for line in io.lines(common.path(name)) do
    if line ~= "" then
      out[#out + 1] = line
    end
  end
  assert(#out > 0, "no lines in " .. common.path(name))
  return out
end

-- The tab-separated fields of a line.
function common.fields(line)
  local out = {}
  for field in string.gmatch(line, "[^\t]+") do
    out[#out + 1] = field
  end
  return out
end

function common.read(name)
  local file = assert(io.open(common.path(name), "rb"))
  local body = file:read("*a")
  file:close()
  return body
end

-- What a browser's fetch() sends besides the cookie: JSON wanted, compression accepted
-- (the server compresses text bodies from 1 KB; wrk does not decompress).
common.ACCEPT_ENCODING = "gzip, deflate, br"

function common.get(path, token, extra)
  local headers = { ["Accept"] = "application/json", ["Accept-Encoding"] = common.ACCEPT_ENCODING }
  if token then
    headers["Authorization"] = "Bearer " .. token
  end
  for k, v in pairs(extra or {}) do
    headers[k] = v
  end
  return wrk.format("GET", path, headers)
end

-- wrk calls setup() in the main state for each thread before the thread starts;
-- thread_no tells the threads apart (seeds, start offsets).
local threads = {}
function setup(thread)
  threads[#threads + 1] = thread
  thread:set("thread_no", #threads)
end

-- Per thread: responses by status code.
statuses = {}
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function common.seed()
  math.randomseed((thread_no or 1) * 7919 + os.time())
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses") or {}) do
      counts[status] = (counts[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(counts) do
    parts[#parts + 1] = string.format("%d:%d", status, n)
  end
  local e = summary.errors
  io.write(string.format(
    "RRA_RESULT requests=%d duration_us=%d bytes=%d p50=%d p95=%d p99=%d max=%d mean=%.1f"
      .. " connect=%d read=%d write=%d timeout=%d status=%s\n",
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(95), latency:percentile(99),
    latency.max, latency.mean, e.connect, e.read, e.write, e.timeout,
    table.concat(parts, ",")
  ))
end

return common
