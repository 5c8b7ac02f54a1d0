-- The Open311 default list as clients actually ask for it: browsers, requests, httpx, curl --compressed and
-- the public checkers all send Accept-Encoding: gzip. The answer is the compressed form the cache keeps.
dofile((os.getenv("MINYI_BENCH_LUA") or "bench") .. "/status.lua")

function init(args)
   wrk.method = "GET"
   wrk.path = "/open311/v2/requests.json"
   wrk.headers["Accept-Encoding"] = "gzip"
end
