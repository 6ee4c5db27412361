-- wrk script: POST JSON bodies read from a file (one body per line), cycling through them, and
-- print one machine-readable summary line at the end.
-- Usage: wrk ... -s benchmarks/post.lua http://127.0.0.1:PORT -- /v1/forecast bodies.jsonl

local requests_ = {}
local next_ = 0

function init(args)
  local path, file_name = args[1], args[2]
  local file = assert(io.open(file_name, "r"))
  for line in file:lines() do
    if #line > 0 then
      local headers = { ["Content-Type"] = "application/json" }
      requests_[#requests_ + 1] = wrk.format("POST", path, headers, line)
    end
  end
  file:close()
  assert(#requests_ > 0, "no request bodies in " .. file_name)
  -- Threads start at different bodies.
  next_ = math.random(#requests_) - 1
end

function request()
  next_ = next_ % #requests_ + 1
  return requests_[next_]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_JSON {\"requests\": %d, \"duration_us\": %d, \"bytes\": %d, "
      .. "\"errors\": {\"connect\": %d, \"read\": %d, \"write\": %d, \"status\": %d, \"timeout\": %d}, "
      .. "\"latency_us\": {\"min\": %.1f, \"mean\": %.1f, \"max\": %.1f, \"stdev\": %.1f, "
      .. "\"p50\": %.1f, \"p90\": %.1f, \"p99\": %.1f, \"p99.9\": %.1f}}\n",
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max, latency.stdev,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)
  ))
end
