-- wrk script of the HTTP benchmark (bench/http_bench.py): one random seeded user per
-- request, each with its own API token, so per-user rules (throttle, velocity) see
-- what many users would cause.
--
-- Environment:
--   BENCH_TOKENS  file with one token per line (line i = user i)
--   BENCH_METHOD  GET or POST (default POST)      BENCH_PATH  request path
--   BENCH_BODY    JSON body of a POST             BENCH_HOT   "1": always user 1
--   BENCH_OK      the status that counts as success (default 201)
--   BENCH_RATE    open loop: total requests per second over all connections; each
--                 request is given a slot of a Poisson schedule (exponential gaps),
--                 and a connection waits for its slot. A slot that finds no idle
--                 connection is sent late and counted in "late".
-- Output: one JSON line prefixed "RESULT " from done().

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } timespec;
  int clock_gettime(int clk_id, timespec *tp);
]]
local ts = ffi.new("timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local method = os.getenv("BENCH_METHOD") or "POST"
local path = os.getenv("BENCH_PATH") or "/api/v1/wallet/spend"
local body = os.getenv("BENCH_BODY")
local hot = os.getenv("BENCH_HOT") == "1"
local ok_status = tonumber(os.getenv("BENCH_OK") or "201")
local rate = tonumber(os.getenv("BENCH_RATE") or "0")

local threads = {}
local tokens = {}
statuses = {} -- globals: done() reads them with thread:get
late = 0
late_ms = 0
local next_slot = nil
local gap_ms = 0

function setup(thread)
  thread:set("thread_index", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(os.getenv("BENCH_TOKENS")) do
    tokens[#tokens + 1] = line
  end
  math.randomseed(1000 + thread_index)
  if rate > 0 then
    -- every wrk thread runs its share of the total rate
    gap_ms = 1000 * tonumber(os.getenv("BENCH_THREADS") or "1") / rate
  end
end

function request()
  local user = hot and 1 or math.random(#tokens)
  local headers = { ["Authorization"] = "Token " .. tokens[user] }
  if body then
    headers["Content-Type"] = "application/json"
  end
  return wrk.format(method, path, headers, body)
end

if rate > 0 then
  function delay()
    local now = now_ms()
    if next_slot == nil then
      next_slot = now
    end
    next_slot = next_slot - math.log(1 - math.random()) * gap_ms
    local wait = next_slot - now
    if wait < 0 then
      late = late + 1
      late_ms = late_ms - wait
      return 0
    end
    return math.floor(wait + 0.5)
  end
end

function response(status, headers, resp_body)
  local key = tostring(status)
  if status ~= ok_status then
    local code = resp_body and resp_body:match('"code"%s*:%s*"([^"]+)"')
    if code then
      key = key .. " " .. code
    end
  end
  statuses[key] = (statuses[key] or 0) + 1
end

function done(summary, latency, requests)
  local merged = {}
  local total_late, total_late_ms = 0, 0
  for _, thread in ipairs(threads) do
    for key, count in pairs(thread:get("statuses")) do
      merged[key] = (merged[key] or 0) + count
    end
    total_late = total_late + (thread:get("late") or 0)
    total_late_ms = total_late_ms + (thread:get("late_ms") or 0)
  end
  local parts = {}
  for key, count in pairs(merged) do
    parts[#parts + 1] = string.format('"%s": %d', key, count)
  end
  local pct = {}
  for _, q in ipairs({ 50, 90, 95, 99, 99.9 }) do
    pct[#pct + 1] = string.format('"%s": %.3f', tostring(q), latency:percentile(q) / 1000)
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_s": %.3f, "statuses": {%s}, "percentiles_ms": {%s}, '
      .. '"mean_ms": %.3f, "max_ms": %.3f, "socket_errors": {"connect": %d, "read": %d, '
      .. '"write": %d, "timeout": %d}, "late": %d, "late_ms_total": %.1f}\n',
    summary.requests, summary.duration / 1e6, table.concat(parts, ", "), table.concat(pct, ", "),
    latency.mean / 1000, latency.max / 1000, e.connect, e.read, e.write, e.timeout,
    total_late, total_late_ms))
end
