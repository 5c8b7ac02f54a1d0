-- POST /api/v1/forms as the public would: a JSON body that differs on every request (content, category,
-- workroom, name, phone), like residents at the workrooms and online.
-- Arguments (after "--"): CATEGORIES WORKROOMS [idempotent]
--   CATEGORIES, WORKROOMS: comma-separated codes; about 1 in 10 forms has neither (sent online),
--   idempotent: also send a fresh Idempotency-Key (a UUID-shaped string) with every form.
dofile((os.getenv("MINYI_BENCH_LUA") or "bench") .. "/status.lua")

local categories, workrooms = {}, {}
local idempotent = false
local counter = 0
local topics = {
   "小区门口的路灯坏了好几盏，晚上出行不安全，希望尽快维修。",
   "菜场周边早上占道经营严重，电动车和行人都很难通过。",
   "村里的河道有垃圾漂浮，夏天气味很大，请安排清理。",
   "公交站台没有遮雨棚，老人等车很辛苦，建议加装。",
   "老旧小区加装电梯的补贴政策不清楚，希望有人来讲解。",
   "路口红绿灯时间太短，老人过马路来不及。",
}
local names = { "王伟", "李芳", "张敏", "刘洋", "陈静", "杨磊" }

local function split(s)
   local out = {}
   for item in string.gmatch(s or "", "[^,]+") do table.insert(out, item) end
   return out
end

function init(args)
   categories = split(args[1])
   workrooms = split(args[2])
   idempotent = args[3] == "idempotent"
   math.randomseed(os.time() * 1000 + (tid or 0))
end

local function field(value)
   if value == nil then return "null" end
   return '"' .. value .. '"'
end

local function uuid()
   return string.format("%08x-%04x-4%03x-%04x-%04x%08x", math.random(0, 0x7fffffff), math.random(0, 0xffff),
      math.random(0, 0xfff), math.random(0x8000, 0xbfff), math.random(0, 0xffff), math.random(0, 0x7fffffff))
end

function request()
   counter = counter + 1
   local online = math.random(10) == 1
   local category = (not online and #categories > 0) and categories[math.random(#categories)] or nil
   local workroom = (not online and #workrooms > 0) and workrooms[math.random(#workrooms)] or nil
   local body = string.format(
      '{"content":"%s（压测 %d-%d-%d）","category":%s,"workroom_code":%s,"submitter_name":%s,'
      .. '"submitter_phone":"139%08d","public":%s}',
      topics[math.random(#topics)], tid or 0, counter, math.random(1, 1000000000), field(category),
      field(workroom), field(names[math.random(#names)]), math.random(0, 99999999),
      math.random(2) == 1 and "true" or "false")
   local headers = { ["Content-Type"] = "application/json" }
   if idempotent then headers["Idempotency-Key"] = uuid() end
   return wrk.format("POST", "/api/v1/forms", headers, body)
end
