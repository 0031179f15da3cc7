-- wrk script for bench/journeys.sh: POST /v1/batch with 100 'Viewed Product' track events per
-- request (~24 KB), the events the 100 generated journeys' entry conditions look at:
-- properties.price 0.00..99.99 and properties.category c0..c6, both varying per event.
-- Otherwise as bench/batch.lua: unique messageId (run id + thread id + counter + index), userId
-- from a pool of 100,000; events/s = requests/s x 100.
-- Usage: wrk -s bench/journeys_batch.lua -H "Authorization: Basic ..." URL -- <run-id>

local threads = {}
local counter = 0
local run = "r"
local PER = 100

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  run = args[1] or "r"
  tid = tid or 0
  wrk.method = "POST"
  wrk.path = "/v1/batch"
  wrk.headers["Content-Type"] = "application/json"
end

local FMT = '{"type":"track","userId":"user-%d","event":"Viewed Product","messageId":"%s-%d-%d-%d",' ..
  '"properties":{"product_id":"sku-%d","price":%d.%02d,"currency":"EUR","category":"c%d"},' ..
  '"context":{"ip":"203.0.113.7"},"timestamp":"2026-01-01T00:00:00.000Z"}'

local parts = {}
function request()
  counter = counter + 1
  local base = tid * 7919 + counter * 104729
  for i = 1, PER do
    local cents = (base + i * 7907) % 10000
    parts[i] = string.format(FMT, (base + i * 613) % 100000, run, tid, counter, i, i,
      math.floor(cents / 100), cents % 100, (base + i * 31) % 7)
  end
  local body = '{"batch":[' .. table.concat(parts, ",", 1, PER) .. ']}'
  return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d seconds=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f max_ms=%.1f non2xx=%d socket_errors=%d\n",
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.status, e.connect + e.read + e.write + e.timeout))
end
