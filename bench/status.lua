-- Shared by every bench script: count the status codes wrk saw (per thread, summed in done()) and
-- print one machine-readable line, "WRK_JSON {...}", that bench/run.py parses.
-- Every script counts responses this way, /healthz included, so the Lua cost is the same in every phase.

local threads = {}

function setup(thread)
   thread:set("tid", #threads + 1)
   table.insert(threads, thread)
end

statuses = {}

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end

local function json_object(t)
   local parts = {}
   for k, v in pairs(t) do
      table.insert(parts, string.format('"%s":%s', tostring(k), tostring(v)))
   end
   return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, requests)
   local merged = {}
   for _, thread in ipairs(threads) do
      local s = thread:get("statuses")
      if s then
         for code, n in pairs(s) do merged[code] = (merged[code] or 0) + n end
      end
   end
   local e = summary.errors
   local lat = {
      min = latency.min, max = latency.max, mean = string.format("%.1f", latency.mean),
      stdev = string.format("%.1f", latency.stdev),
      p50 = latency:percentile(50), p75 = latency:percentile(75), p90 = latency:percentile(90),
      p99 = latency:percentile(99), p999 = latency:percentile(99.9),
   }
   io.write("WRK_JSON {")
   io.write(string.format('"requests":%d,"duration_us":%d,"bytes":%d,', summary.requests, summary.duration, summary.bytes))
   io.write(string.format('"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},',
                          e.connect, e.read, e.write, e.status, e.timeout))
   io.write('"latency_us":' .. json_object(lat) .. ',')
   io.write('"statuses":' .. json_object(merged))
   io.write("}\n")
end
