-- wrk script: every request is a POST of one JSON body read from the file named by $WRK_BODY.
--   WRK_BODY=body.json wrk -t1 -c32 -d10s -s benchmarks/wrk/post.lua 'http://127.0.0.1:8000/predict/cnn?backend=scratch'
-- Statuses other than 200 are counted per status and printed at the end (wrk itself only counts "non-2xx").
local path = os.getenv("WRK_BODY") or error("set WRK_BODY to the file holding the request body")
local f = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
wrk.headers["Content-Type"] = "application/json"
f:close()

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    local s = thread:get("statuses")
    for code, n in pairs(s) do counts[code] = (counts[code] or 0) + n end
  end
  local parts = {}
  for code, n in pairs(counts) do table.insert(parts, string.format('"%d": %d', code, n)) end
  io.write(string.format('WRK_JSON {"requests": %d, "duration_us": %d, "errors_connect": %d, "errors_read": %d, ' ..
    '"errors_write": %d, "errors_timeout": %d, "errors_status": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"statuses": {%s}}\n', summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout, summary.errors.status, latency:percentile(50),
    latency:percentile(99), latency.max, table.concat(parts, ", ")))
end
