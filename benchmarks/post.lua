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

dofile(string.gsub(debug.getinfo(1, "S").source:sub(2), "post.lua$", "summary.lua"))
