-- GET /api/v1/forms/{id}/similar as a coordinator (bearer token): a random form of a list each time.
-- Arguments (after "--"): TOKEN IDS   (IDS: comma-separated form ids, all indexed for similar forms)
dofile((os.getenv("MINYI_BENCH_LUA") or "bench") .. "/status.lua")

local ids = {}

function init(args)
   wrk.method = "GET"
   wrk.headers["Authorization"] = "Bearer " .. args[1]
   for id in string.gmatch(args[2] or "", "[^,]+") do table.insert(ids, id) end
   math.randomseed(os.time() * 1000 + (tid or 0))
end

function request()
   return wrk.format(nil, "/api/v1/forms/" .. ids[math.random(#ids)] .. "/similar")
end
