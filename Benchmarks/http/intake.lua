-- wrk script: POSTs PagerDuty webhook v3 deliveries, each with a unique event id, so every request is a
-- durable insert (no deduplication short-cuts). Ids are unique across runs too, by a token given after `--` (or the
-- start time): otherwise a second run against the same database posts the first run's ids again and measures
-- duplicates, which cost no event row.
local counter = 0
local thread_id = 0
local run = ""

function setup(thread)
   thread:set("id", thread_id)
   thread_id = thread_id + 1
end

function init(args)
   run = args[1] or tostring(os.time())
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
end

function request()
   counter = counter + 1
   local id = string.format("bench-%s-%d-%d", run, id, counter)
   local body = '{"event":{"id":"' .. id .. '","event_type":"incident.annotated","resource_type":"incident",' ..
      '"occurred_at":"2026-11-24T03:00:00Z","agent":null,"client":null,"data":{"incident":{"id":"PB' .. (counter % 500) ..
      '","type":"incident_reference","summary":"bench"},"id":"N' .. counter .. '","content":"load","trimmed":false,"type":"incident_note"}}}'
   return wrk.format(nil, "/webhooks/pagerduty", nil, body)
end
