-- The Celery wire contract: a task message built by hand, as Celery and kombu would write it.
-- Prepended to every script after _lib.lua by eventfwd/core/ledger.py (not a script of its own).
--
-- Assumptions (checked by tests/unit/test_celery_message.py against Celery's own `as_task_v2`
-- and kombu's Redis channel, at both ends of the versions pyproject.toml allows):
--   * Celery task protocol 2: headers carry lang, task, id, root_id, retries, argsrepr, kwargsrepr,
--     origin, ignore_result; the body is the JSON [args, kwargs, embed].
--   * kombu's Redis transport envelope: {body, content-encoding, content-type, headers,
--     properties{correlation_id, reply_to, delivery_mode, priority, delivery_info, delivery_tag}},
--     the body as raw JSON text ('utf-8' content-encoding, no base64).
--   * kombu publishes a priority-0 message with LPUSH onto the list named after the queue and
--     consumes with BRPOP (the tail); the delivery tag only has to be unique per message.

-- Celery protocol-2 message (kombu Redis transport envelope, raw JSON body) for task `task`:
-- with args [ids] when `ids` is not empty, else no args (a wake-up). Pushed where kombu's own
-- publish puts a priority-0 message: LPUSH, the tail of the queue (kombu consumes with BRPOP).
-- `head` = true pushes to the other end instead, so that it does not wait behind a backlog.
local function publish(p, queue, task, ids, head)
  local tag = p .. '-' .. redis.call('INCR', key(p, 'seq'))
  local task_id, args, argsrepr = tag, '[]', '()'
  if #ids > 0 then
    args = '[' .. cjson.encode(ids) .. ']'
    argsrepr = '(' .. #ids .. ' event id(s))'
    if #ids == 1 then task_id = ids[1] end
  end
  local body = args .. ',{},{"callbacks":null,"errbacks":null,"chain":null,"chord":null}]'
  body = '[' .. body
  local msg = cjson.encode({
    body = body,
    ['content-encoding'] = 'utf-8',
    ['content-type'] = 'application/json',
    headers = {
      lang = 'py', task = task, id = task_id, root_id = task_id, retries = 0,
      argsrepr = argsrepr, kwargsrepr = '{}', origin = 'eventfwd-ledger',
      ignore_result = true,
    },
    properties = {
      correlation_id = task_id, reply_to = '', delivery_mode = 2, priority = 0,
      delivery_info = {exchange = '', routing_key = queue}, delivery_tag = tag,
    },
  })
  redis.call(head and 'RPUSH' or 'LPUSH', queue, msg)
end

-- A wake-up for the fleet when no delivery engine has claimed lately (at most one per wake_ms):
-- an engine alive claims by itself, so only a fleet without one needs a Celery message.
local function wake_if_no_engine(p, queue, task, wake_ms, now)
  if redis.call('ZCOUNT', key(p, 'engines'), '(' .. now, '+inf') == 0
      and redis.call('SET', key(p, 'wake'), 1, 'NX', 'PX', wake_ms) then
    publish(p, queue, task, {}, true)
  end
end
