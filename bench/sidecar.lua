-- wrk script for bench/sidecar.sh: one summary line, and an optional PATCH body.
--
--   wrk ... -s bench/sidecar.lua URL -- [patch]
--
-- "patch": every request is a JSON-patch removing the image's first location (the guarded PATCH:
-- the sidecar looks the image up before forwarding it). Otherwise plain GETs.

function init(args)
  if args[1] == "patch" then
    wrk.method = "PATCH"
    wrk.body = '[{"op": "remove", "path": "/locations/0"}]'
    wrk.headers["Content-Type"] = "application/openstack-images-v2.1-json-patch"
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d seconds=%.3f bytes=%d p50_ms=%.3f p99_ms=%.3f errors=%d non2xx=%d\n",
    summary.requests, summary.duration / 1e6, summary.bytes, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.connect + e.read + e.write + e.timeout, e.status))
end
