-- bench/load_test.py's request mix for wrk (one connection per thread: -t N -c N).
--
-- Each thread acts as its own slice of the seeded accounts (account i belongs to thread
-- ((i - 1) % THREADS) + 1), so one account's writes go one after the other on one
-- connection and the order of its acknowledged likes and follows is the order in the
-- log. Every request is logged to log-RUN-TID.tsv with the monotonic clock (LuaJIT FFI,
-- the same clock as Python's time.monotonic): an "S" line when a write is sent and an
-- "R" line when any answer arrives, an "L" line for a request given up (wrk sent the
-- next one on a new connection before it was answered). A write with an S line and no
-- R line was never answered (a timeout, a dropped connection, or the end of the run): it may or may not
-- have been applied.
--
-- With RATE > 0 requests follow a fixed schedule (RATE / THREADS per second on each
-- connection, wrk2-like): the "corrected" latency counts from when a request was due,
-- so a server that falls behind the schedule shows it instead of slowing the load down.
-- Placeholders (@...@) are filled in by load_test.py.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } ps_timespec;
  int clock_gettime(int clk_id, ps_timespec *tp);
]]
local ts = ffi.new("ps_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000000 + math.floor(tonumber(ts.tv_nsec) / 1000)
end

local data, run_label, rate, nthreads = "@DATA@", "@RUN@", @RATE@, @THREADS@
local MIX = {@MIX@}

local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

local names, tokens = {}, {}
local mine, posters = {}, {}
local posts = {}
local media = {}
local following, follow_list = {}, {}
local liked, like_list = {}, {}
local total_weight = 0
local out
local interval, next_due
local pending
local n = 0
local answered = 0

local function add_pair(set, list, key)
  if not set[key] then
    set[key] = #list + 1
    list[#list + 1] = key
  end
end

local function remove_pair(set, list, key)
  local at = set[key]
  if at then
    local last = list[#list]
    list[at] = last
    set[last] = at
    list[#list] = nil
    set[key] = nil
  end
end

function init(args)
  local slot = tid - 1
  for line in io.lines(data .. "/accounts.txt") do
    local name, token = line:match("^(%S+) (%S+)$")
    names[#names + 1] = name
    tokens[#tokens + 1] = token
    if (#names - 1) % nthreads == slot then mine[#mine + 1] = #names end
  end
  for line in io.lines(data .. "/posts.txt") do posts[#posts + 1] = line end
  for line in io.lines(data .. "/media.txt") do
    local who, id = line:match("^(%d+) (%d+)$")
    who = tonumber(who)
    if (who - 1) % nthreads == slot then
      media[who] = id
      posters[#posters + 1] = who
    end
  end
  -- the current follows and likes of this thread's accounts ("a b", 1-based indices / post ids)
  for line in io.lines(data .. "/follows.txt") do
    local a = tonumber(line:match("^(%d+)"))
    if (a - 1) % nthreads == slot then add_pair(following, follow_list, line) end
  end
  for line in io.lines(data .. "/likes.txt") do
    local a = tonumber(line:match("^(%d+)"))
    if (a - 1) % nthreads == slot then add_pair(liked, like_list, line) end
  end
  for _, m in ipairs(MIX) do total_weight = total_weight + m[2] end
  out = io.open(data .. "/log-" .. run_label .. "-" .. tid .. ".tsv", "w")
  out:setvbuf("full")
  math.randomseed(tid * 7919 + now_us() % 100000)
  if rate > 0 then
    interval = nthreads * 1000000 / rate
    next_due = now_us() + math.random() * interval
  end
end

local function auth(i, json)
  local h = {["Authorization"] = "Bearer " .. tokens[i]}
  if json then h["Content-Type"] = "application/json" end
  return h
end

local function pick(list) return list[math.random(#list)] end

local function kind_of()
  local r = math.random() * total_weight
  for _, m in ipairs(MIX) do
    r = r - m[2]
    if r <= 0 then return m[1] end
  end
  return MIX[#MIX][1]
end

-- Returns kind, detail, method, path, json body (or nil), acting account.
local function build(kind)
  local me = pick(mine)
  if kind == "feed" then
    return kind, "", "GET", "/v1/feed?limit=20", nil, me
  elseif kind == "notifications" then
    return kind, "", "GET", "/v1/notifications?limit=20", nil, me
  elseif kind == "profile" then
    return kind, "", "GET", "/v1/accounts/" .. names[math.random(#names)], nil, me
  elseif kind == "profile_posts" then
    return kind, "", "GET", "/v1/accounts/" .. names[math.random(#names)] .. "/posts?limit=12", nil, me
  elseif kind == "post" then
    return kind, "", "GET", "/v1/posts/" .. pick(posts), nil, me
  elseif kind == "comments" then
    return kind, "", "GET", "/v1/posts/" .. pick(posts) .. "/comments?limit=20", nil, me
  elseif kind == "unlike" and #like_list > 0 then
    local pair = pick(like_list)
    local a, p = pair:match("^(%d+) (%d+)$")
    return kind, pair, "DELETE", "/v1/posts/" .. p .. "/like", nil, tonumber(a)
  elseif kind == "unlike" or kind == "like" then
    for _ = 1, 10 do
      local p = pick(posts)
      if not liked[me .. " " .. p] then
        return "like", me .. " " .. p, "POST", "/v1/posts/" .. p .. "/like", nil, me
      end
    end
    return build("feed")
  elseif kind == "comment" then
    local p = pick(posts)
    n = n + 1
    return kind, me .. " " .. p, "POST", "/v1/posts/" .. p .. "/comments", '{"text":"load test comment ' .. n .. ' #load"}', me
  elseif kind == "unfollow" and #follow_list > 0 then
    local pair = pick(follow_list)
    local a, b = pair:match("^(%d+) (%d+)$")
    return kind, pair, "DELETE", "/v1/accounts/" .. names[tonumber(b)] .. "/follow", nil, tonumber(a)
  elseif kind == "unfollow" or kind == "follow" then
    for _ = 1, 20 do
      local b = math.random(#names)
      if b ~= me and not following[me .. " " .. b] then
        return "follow", me .. " " .. b, "POST", "/v1/accounts/" .. names[b] .. "/follow", nil, me
      end
    end
    return build("feed")
  elseif kind == "create_post" and #posters > 0 then
    local who = pick(posters)
    n = n + 1
    return kind, tostring(who), "POST", "/v1/posts", '{"caption":"load test post ' .. n .. ' #load","media_ids":["' .. media[who] .. '"]}', who
  end
  return build("feed")
end

-- wrk calls request() once on the first thread's state before the run to check the
-- script (script_verify_request); that request is never sent, so it is not logged.
local verified = false

function request()
  if not verified then
    verified = true
    if tid == 1 then return wrk.format("GET", "/healthz") end
  end
  local t = now_us()
  if pending then -- the previous request was never answered
    out:write("L\t", pending.sent, "\t", pending.kind, "\t", pending.detail, "\n")
    pending = nil
  end
  local due = t
  if rate > 0 then
    due = next_due
    next_due = next_due + interval
  end
  local kind, detail, method, path, body, actor = build(kind_of())
  local write = method ~= "GET"
  pending = {kind = kind, detail = detail, sent = t, due = due, write = write}
  if write then out:write("S\t", t, "\t", kind, "\t", detail, "\n") end
  return wrk.format(method, path, auth(actor, body ~= nil), body)
end

if rate > 0 then
  function delay()
    local wait = (next_due - now_us()) / 1000
    if wait < 1 then return 0 end
    return math.floor(wait)
  end
end

function response(status, headers, body)
  local t = now_us()
  local p = pending
  pending = nil
  if not p then return end
  local detail = p.detail
  if status >= 200 and status < 300 then
    if p.kind == "like" then add_pair(liked, like_list, detail)
    elseif p.kind == "unlike" then remove_pair(liked, like_list, detail)
    elseif p.kind == "follow" then add_pair(following, follow_list, detail)
    elseif p.kind == "unfollow" then remove_pair(following, follow_list, detail)
    elseif p.kind == "create_post" then
      local id = body:match('^{"id":%s*"(%d+)"')
      if id then posts[#posts + 1] = id end
      detail = detail .. " " .. (id or "?")
    end
  end
  -- R, answered (monotonic us), kind, status, service latency us, corrected latency us, detail
  out:write("R\t", t, "\t", p.kind, "\t", status, "\t", t - p.sent, "\t", t - p.due, "\t", detail, "\n")
  answered = answered + 1
  if answered % 200 == 0 then out:flush() end -- the file is readable while wrk runs
end
