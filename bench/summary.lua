-- GET /api/v1/stats/summary as staff. Arguments (after "--"): TOKEN [ETAG]
-- With ETAG the request carries If-None-Match and every answer should be 304.
dofile((os.getenv("MINYI_BENCH_LUA") or "bench") .. "/status.lua")

function init(args)
   wrk.method = "GET"
   wrk.path = "/api/v1/stats/summary"
   wrk.headers["Authorization"] = "Bearer " .. args[1]
   if args[2] and args[2] ~= "" then
      wrk.headers["If-None-Match"] = args[2]
   end
end
