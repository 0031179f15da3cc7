-- wrk script: POST /v1/track, one ~300-byte Segment track event per request.
-- Every request carries a unique messageId (run id + thread id + counter), so journeyd's
-- dedupe never short-cuts a request, and a userId from a pool of 100,000.
-- Usage: wrk -s bench/track.lua -H "Authorization: Basic ..." URL -- <run-id>

local threads = {}
local counter = 0
local run = "r"

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  run = args[1] or "r"
  tid = tid or 0
  wrk.method = "POST"
  wrk.path = "/v1/track"
  wrk.headers["Content-Type"] = "application/json"
end

local FMT = '{"userId":"user-%d","event":"Product Viewed","messageId":"%s-%d-%d",' ..
  '"properties":{"product_id":"sku-%d","name":"Trail Running Shoe","price":89.95,"currency":"EUR","category":"shoes"},' ..
  '"context":{"ip":"203.0.113.7","library":{"name":"wrk","version":"4.1"}},' ..
  '"timestamp":"2026-01-01T00:00:00.000Z"}'

function request()
  counter = counter + 1
  local user = (tid * 7919 + counter * 104729) % 100000
  local body = string.format(FMT, user, run, tid, counter, counter % 5000)
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
