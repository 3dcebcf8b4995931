-- Request generator for bench/run.py. Every workload goes through this script, so wrk does the
-- same work per request in every variant. Requests are built once in init() and rotated; wrk runs
-- init() before its clock starts, so loading a large token pool does not shorten the measured window.
-- args: tokens_file|- offset method body_file|- token|-
local reqs, n, i = {}, 0, 0

function init(args)
  local method, body = args[3], nil
  if args[4] ~= "-" then
    local f = assert(io.open(args[4], "rb"))
    body = f:read("*a")
    f:close()
  end
  local function build(token)
    local h = {}
    if token then h["Authorization"] = "Bearer " .. token end
    if body then h["Content-Type"] = "application/json" end
    return wrk.format(method, nil, h, body)
  end
  if args[1] ~= "-" then
    for line in io.lines(args[1]) do
      if #line > 0 then
        n = n + 1
        reqs[n] = build(line)
      end
    end
  elseif args[5] ~= "-" then
    n, reqs[1] = 1, build(args[5])
  else
    n, reqs[1] = 1, build(nil)
  end
  i = (tonumber(args[2]) or 0) % n
end

function request()
  i = i % n + 1
  return reqs[i]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d status_errors=%d connect=%d read=%d write=%d " ..
    "timeout=%d p50_us=%d p90_us=%d p99_us=%d mean_us=%.1f max_us=%d\n",
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean,
    latency.max))
end
