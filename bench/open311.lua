-- GET /open311/v2/requests.json with no filter: the public default (the last 90 days, at most 1,000
-- published forms, newest first), what an Open311 client or a map polls.
dofile((os.getenv("MINYI_BENCH_LUA") or "bench") .. "/status.lua")

function init(args)
   wrk.method = "GET"
   wrk.path = "/open311/v2/requests.json"
end
