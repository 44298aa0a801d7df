-- wrk script of bench/run.js: the request each workload sends, and one summary line.
--
--   wrk ... -s bench/wrk.lua URL -- get
--   wrk ... -s bench/wrk.lua URL -- patch BODY      PATCH with BODY as a Glance JSON patch
--   wrk ... -s bench/wrk.lua URL -- range SIZE LEN  GETs of LEN bytes at random offsets of SIZE
--
-- No response() callback on purpose: defining one makes wrk copy every body into Lua, which would
-- make the load generator the bottleneck. Answers are checked by run.js (a probe before each
-- measurement, and the bytes per answer from the RESULT line).

local mode, size, len = "get", 0, 0
local path, fixed

function init(args)
  mode = args[1] or "get"
  path = wrk.path
  if mode == "patch" then
    wrk.method = "PATCH"
    wrk.body = args[2]
    wrk.headers["Content-Type"] = "application/openstack-images-v2.1-json-patch"
  elseif mode == "range" then
    size = tonumber(args[2] or "0")
    len = tonumber(args[3] or "1048576")
    if size == nil or size < len then error("wrk.lua: range needs SIZE >= LEN") end
    -- One Lua state per wrk thread: seed each differently.
    math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
  end
  -- get and patch send the same request each time: built once.
  if mode ~= "range" then fixed = wrk.format() end
end

function request()
  if fixed then return fixed end
  local o = math.random(0, size - len)
  return wrk.format("GET", path, { ["Range"] = string.format("bytes=%d-%d", o, o + len - 1) })
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d seconds=%.3f bytes=%d p50_ms=%.3f p99_ms=%.3f errors=%d non2xx=%d\n",
    summary.requests, summary.duration / 1e6, summary.bytes, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, e.connect + e.read + e.write + e.timeout, e.status))
end
