-- wrk script: POST Open Inference Protocol binary requests (JSON header + raw tensor bytes) read from
-- a file of records "<header bytes> <body bytes>\n<body>", cycling through them; prints the same
-- machine-readable summary line as post.lua (it is reused from there).
-- Usage: wrk ... -s benchmarks/post_v2.lua http://127.0.0.1:PORT -- /v2/models/NAME/infer bodies.bin

local requests_ = {}
local next_ = 0

function init(args)
  local path, file_name = args[1], args[2]
  local file = assert(io.open(file_name, "rb"))
  while true do
    local line = file:read("*l")
    if line == nil then break end
    local header_len, body_len = line:match("^(%d+) (%d+)$")
    assert(header_len, "bad record header: " .. line)
    local body = file:read(tonumber(body_len))
    local headers = {
      ["Content-Type"] = "application/octet-stream",
      ["Inference-Header-Content-Length"] = header_len,
    }
    requests_[#requests_ + 1] = wrk.format("POST", path, headers, body)
  end
  file:close()
  assert(#requests_ > 0, "no request bodies in " .. file_name)
  next_ = math.random(#requests_) - 1
end

function request()
  next_ = next_ % #requests_ + 1
  return requests_[next_]
end

dofile(string.gsub(debug.getinfo(1, "S").source:sub(2), "post_v2.lua$", "summary.lua"))
