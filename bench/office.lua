-- GET one page of the office's forms list (/office/forms, the desk table and the phone's cards in one
-- page) as a signed-in coordinator. Arguments (after "--"): TOKEN QUERY
--   TOKEN: a staff session token, sent as the pages' cookie; QUERY: the list's query string ("" = default).
dofile((os.getenv("MINYI_BENCH_LUA") or "bench") .. "/status.lua")

function init(args)
   wrk.method = "GET"
   wrk.path = "/office/forms" .. ((args[2] and args[2] ~= "") and ("?" .. args[2]) or "")
   wrk.headers["Cookie"] = "minyi_session=" .. args[1]
end
