-- wrk script: POST a lookup for random existing quickstart customers (ids 1000..100999).
-- Arguments (after `--`): path (default /v1/features), customers per request (default 1),
-- and a token to send as `Authorization: Bearer …` (none by default).
--   wrk -t1 -c1 -d10s --latency -s bench/lookup.lua http://127.0.0.1:6566 -- /v1/features 100 fst_…
-- Non-200 answers show up in wrk's "Non-2xx or 3xx responses" line.
local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

local path, per_request = "/v1/features", 1
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  path = args[1] or path
  per_request = tonumber(args[2] or "1")
  if args[3] and args[3] ~= "" then
    headers["Authorization"] = "Bearer " .. args[3]
  end
  math.randomseed(os.time() * 64 + (id or 0))
end

function request()
  local ids = {}
  for i = 1, per_request do
    ids[i] = math.random(1000, 100999)
  end
  local body = '{"feature_service":"segmentation_v1","entities":{"customer_id":['
    .. table.concat(ids, ",") .. ']}}'
  return wrk.format("POST", path, headers, body)
end
