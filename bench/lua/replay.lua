-- Replays the requests of a file, round robin, one request per line:
--   METHOD <TAB> PATH <TAB> AUTHORIZATION (may be empty) <TAB> JSON BODY (may be empty)
-- and prints the run's figures as one JSON line after "BENCH_JSON ".
-- AUTHORIZATION may list several values separated by "|": each wall-clock second the next
-- one is sent (a page swapping in each answer's fresh session token).
-- Usage: wrk -s replay.lua URL -- requests.tsv

local requests = {}
local index = 0
local PLACEHOLDER = "@@AUTHORIZATION@@"

local function split(line)
  local fields = {}
  for field in (line .. "\t"):gmatch("([^\t]*)\t") do
    fields[#fields + 1] = field
  end
  return fields
end

function init(args)
  for line in io.lines(args[1]) do
    local f = split(line)
    local headers = { ["Host"] = "127.0.0.1" }
    local rotate = nil
    if f[3]:find("|", 1, true) then
      rotate = {}
      for value in f[3]:gmatch("[^|]+") do rotate[#rotate + 1] = value end
      headers["Authorization"] = PLACEHOLDER
    elseif f[3] ~= "" then
      headers["Authorization"] = f[3]
    end
    local body = nil
    if f[4] ~= nil and f[4] ~= "" then
      body = f[4]
      headers["Content-Type"] = "application/json"
    end
    local formatted = wrk.format(f[1], f[2], headers, body)
    if rotate then
      local at = formatted:find(PLACEHOLDER, 1, true)
      requests[#requests + 1] = {
        head = formatted:sub(1, at - 1),
        tail = formatted:sub(at + #PLACEHOLDER),
        rotate = rotate,
      }
    else
      requests[#requests + 1] = formatted
    end
  end
  -- Each wrk thread starts at its own offset so threads do not replay in lock step.
  index = math.random(#requests) - 1
end

function request()
  index = index % #requests + 1
  local r = requests[index]
  if type(r) == "string" then
    return r
  end
  return r.head .. r.rotate[os.time() % #r.rotate + 1] .. r.tail
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
