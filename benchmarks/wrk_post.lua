-- POST bodies read from $BODIES_FILE (one JSON per line), rotated per request; done() prints a WRKJSON line.
local bodies = {}
local idx = 1
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function init(args)
  local f = assert(io.open(os.getenv("BODIES_FILE"), "r"))
  for line in f:lines() do if #line > 0 then bodies[#bodies + 1] = line end end
  f:close()
end

function request()
  local b = bodies[idx]
  idx = idx % #bodies + 1
  return wrk.format(nil, nil, nil, b)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"non_2xx":%d,"socket_errors":%d,' ..
    '"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
