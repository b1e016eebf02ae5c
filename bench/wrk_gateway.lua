-- wrk script of bench/gateway_inbound.py: every request is a different signed gateway delivery.
-- init args: <file of "signature body" lines> <number of wrk threads>. Each thread takes every
-- n-th line from its own offset, so no two requests of a run carry the same message.
local bodies, sigs = {}, {}
local next_index, step = 0, 1
local created = 0

function setup(thread)
  thread:set("tid", created)
  created = created + 1
end

function init(args)
  for line in io.lines(args[1]) do
    local sig, body = line:match("^(%x+) (.*)$")
    sigs[#sigs + 1] = sig
    bodies[#bodies + 1] = body
  end
  next_index = tid
  step = tonumber(args[2])
end

function request()
  local i = (next_index % #bodies) + 1
  next_index = next_index + step
  return wrk.format("POST", "/gateway/messages",
    { ["Content-Type"] = "application/json", ["X-Gateway-Signature"] = sigs[i] }, bodies[i])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK-JSON {"requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "status_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
