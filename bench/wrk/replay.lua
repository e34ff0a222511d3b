-- Replay a pre-generated list of requests with wrk, counting answers by status.
--
--   wrk -t T -c C -d 10s -s bench/wrk/replay.lua http://127.0.0.1:PORT -- LIST MODE T
--
-- LIST holds one request per line: METHOD <tab> PATH <tab> BODY (BODY may be
-- empty; a body is sent as application/json). Requests are formatted once, in
-- init(), so request() costs the load generator a table lookup.
--
-- MODE
--   cycle  every thread repeats the whole list until the duration is up
--          (the read ceiling: one GET over and over);
--   once   thread i of T takes lines i, i+T, i+2T, ... and sends each once;
--          a thread that runs out stops and prints "BENCH_EXHAUSTED" (unique
--          registration pairs: a repeat would only measure the 409 path).
--          wrk itself always runs for its whole --duration, so bench.wrk_load
--          ends it early with SIGINT once enough threads have run out.
--
-- done() prints one line for bench.wrk_load to parse:
--   BENCH_RESULT {"requests":..,"statuses":{"201":..},"exhausted_threads":..,...}

local threads = {}
local thread_count = 0

function setup(thread)
   thread:set("index", thread_count)
   thread_count = thread_count + 1
   table.insert(threads, thread)
end

local requests, position, mode

function init(args)
   local list, total = args[1], tonumber(args[3])
   mode = args[2]
   assert(mode == "cycle" or mode == "once", "MODE must be cycle or once")
   requests, position = {}, 0
   statuses, exhausted = {}, 0 -- globals: done() reads them with thread:get
   local line_number = 0
   for line in io.lines(list) do
      if mode == "cycle" or line_number % total == index then
         local method, path, body = line:match("^(%u+)\t([^\t]+)\t?(.*)$")
         assert(method, "bad request line: " .. line)
         local headers = {}
         if body == "" then
            body = nil
         else
            headers["Content-Type"] = "application/json"
         end
         requests[#requests + 1] = wrk.format(method, path, headers, body)
      end
      line_number = line_number + 1
   end
   assert(#requests > 0, "thread " .. index .. " has no requests in " .. list)
end

function request()
   position = position + 1
   if position > #requests then
      if mode == "once" then
         -- Out of unique requests: stop this thread. wrk still wants a request
         -- for this call; the thread stops before it reads the answer.
         if exhausted == 0 then
            exhausted = 1
            wrk.thread:stop()
            io.write("BENCH_EXHAUSTED\n")
            io.flush()
         end
         return requests[#requests]
      end
      position = 1
   end
   return requests[position]
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
   local counts, exhausted_threads = {}, 0
   for _, thread in ipairs(threads) do
      for status, n in pairs(thread:get("statuses")) do
         counts[status] = (counts[status] or 0) + n
      end
      exhausted_threads = exhausted_threads + thread:get("exhausted")
   end
   local status_fields = {}
   for status, n in pairs(counts) do
      status_fields[#status_fields + 1] = string.format('"%d":%d', status, n)
   end
   local errors = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,'
         .. '"max_us":%d,"statuses":{%s},"exhausted_threads":%d,"errors":{"connect":%d,'
         .. '"read":%d,"write":%d,"timeout":%d,"status":%d}}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max, table.concat(status_fields, ","),
      exhausted_threads, errors.connect, errors.read, errors.write, errors.timeout,
      errors.status))
end
