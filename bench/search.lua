-- GET /api/v1/forms?q=... (the staff API's Chinese search, issue 19.1) with a bearer token.
-- Arguments (after "--"): TOKEN QUERY   QUERY: the query string, percent-encoded ("q=%E8%B7%AF%E7%81%AF").
dofile((os.getenv("MINYI_BENCH_LUA") or "bench") .. "/status.lua")

function init(args)
   wrk.method = "GET"
   wrk.path = "/api/v1/forms?" .. args[2]
   wrk.headers["Authorization"] = "Bearer " .. args[1]
end
