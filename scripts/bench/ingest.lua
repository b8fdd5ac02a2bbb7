-- wrk script for scripts/bench/ingest.sh: POST one fixed JSON body with the device's headers over a
-- keep-alive connection, and print the figures in a parseable line at the end.
--
-- Environment (set by ingest.sh):
--   BENCH_BODY_FILE  file holding the request body (sent as is)
--   BENCH_TOKEN      device access token (sent as "Authorization: Bearer <token>")
--   BENCH_DEVICE_ID  device id (sent as "Device-Id")

local function env(name)
  local v = os.getenv(name)
  if v == nil or v == "" then
    error(name .. " is not set")
  end
  return v
end

local f = assert(io.open(env("BENCH_BODY_FILE"), "rb"))
local body = f:read("*a")
f:close()

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. env("BENCH_TOKEN")
wrk.headers["Device-Id"] = env("BENCH_DEVICE_ID")

-- Called once after the run. Latencies are in microseconds; errors.status counts responses >= 400
-- (what wrk prints as "Non-2xx or 3xx responses").
function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d rps=%.2f mean_us=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
    "non2xx=%d err_connect=%d err_read=%d err_write=%d err_timeout=%d body_bytes=%d\n",
    summary.requests, summary.duration, summary.requests / secs, latency.mean,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.status, e.connect, e.read, e.write, e.timeout, #body))
end
