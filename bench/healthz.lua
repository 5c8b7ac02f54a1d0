-- GET /healthz: the app's own liveness endpoint, the baseline every ratio is taken against.
dofile((os.getenv("MINYI_BENCH_LUA") or "bench") .. "/status.lua")
wrk.method = "GET"
wrk.path = "/healthz"
