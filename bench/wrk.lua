-- wrk script for bench/ranges.sh.
--
--   wrk ... -s bench/wrk.lua URL -- MODE SIZE [RANGE_LEN] [ALIGN]
--
--   MODE       "range": every request asks for `Range: bytes=o-(o+RANGE_LEN-1)` at a random
--              offset o (a multiple of ALIGN, 1 = any byte) inside an image of SIZE bytes;
--              "full": plain GETs of the whole image.
--   SIZE       image size in bytes
--   RANGE_LEN  bytes per range (default 1048576)
--   ALIGN      offset alignment in bytes (default 1: unaligned)
--
-- No response() callback on purpose: defining one makes wrk copy every body into Lua, which
-- would make the load generator the bottleneck. Correctness is checked by the caller (curl
-- probes before the run, and bytes per answer from the summary line printed by done()).

local mode, size, range_len, align = "full", 0, 1048576, 1
local path

function init(args)
  mode = args[1] or "full"
  size = tonumber(args[2] or "0")
  range_len = tonumber(args[3] or "1048576")
  align = tonumber(args[4] or "1")
  if mode == "range" and (size == nil or size < range_len) then
    error("wrk.lua: range mode needs SIZE >= RANGE_LEN, got SIZE=" .. tostring(args[2]))
  end
  if align < 1 then align = 1 end
  path = wrk.path
  -- One Lua state per wrk thread: seed each differently.
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
end

function request()
  if mode ~= "range" then
    return wrk.format("GET", path)
  end
  local slots = math.floor((size - range_len) / align) -- last valid offset / align
  local o = math.random(0, slots) * align
  return wrk.format("GET", path, { ["Range"] = string.format("bytes=%d-%d", o, o + range_len - 1) })
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d bytes=%d duration_us=%d connect_errors=%d read_errors=%d write_errors=%d status_errors=%d timeouts=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.bytes, summary.duration,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
