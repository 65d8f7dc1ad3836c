-- Replays the requests of a file, round robin, one request per line:
--   METHOD <TAB> PATH <TAB> AUTHORIZATION (may be empty) <TAB> JSON BODY (may be empty)
-- and prints the run's figures as one JSON line after "BENCH_JSON ".
-- Usage: wrk -s replay.lua URL -- requests.tsv

local requests = {}
local index = 0

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
    if f[3] ~= "" then headers["Authorization"] = f[3] end
    local body = nil
    if f[4] ~= nil and f[4] ~= "" then
      body = f[4]
      headers["Content-Type"] = "application/json"
    end
    requests[#requests + 1] = wrk.format(f[1], f[2], headers, body)
  end
  -- Each wrk thread starts at its own offset so threads do not replay in lock step.
  index = math.random(#requests) - 1
end

function request()
  index = index % #requests + 1
  return requests[index]
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
