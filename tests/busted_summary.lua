-- busted output handler: one line per test, failures with their message and
-- place, and a machine-readable closing line that tests/run sums:
--   #summary passed=N failed=N skipped=N
-- (busted's own closing line is not in the "N passed, N failed" form).
return function(options)
  local busted = require 'busted'
  local handler = require 'busted.outputHandlers.base'()
  local passed, failed, skipped = 0, 0, 0

  local function say(s)
    io.stdout:write(s, '\n')
    io.stdout:flush()
  end

  local function show_failure(kind, t)
    local message = t.message
    if type(message) ~= 'string' then message = require('pl.pretty').write(message) end
    say(('FAIL  %s'):format(t.name or '?'))
    if t.element and t.element.trace and t.element.trace.short_src then
      say(('      at %s:%s'):format(t.element.trace.short_src, t.element.trace.currentline))
    end
    say('      ' .. kind .. ': ' .. tostring(message):gsub('\n', '\n      '))
    if t.trace and t.trace.traceback and options.verbose then
      say('      ' .. t.trace.traceback:gsub('\n', '\n      '))
    end
  end

  handler.testEnd = function(element, parent, status)
    if status == 'success' then
      passed = passed + 1
      say('ok    ' .. handler.getFullName(element))
    elseif status == 'pending' then
      skipped = skipped + 1
      say('skip  ' .. handler.getFullName(element))
    elseif status == 'failure' then
      failed = failed + 1
      show_failure('failure', handler.failures[#handler.failures])
    elseif status == 'error' then
      failed = failed + 1
      show_failure('error', handler.errors[#handler.errors])
    end
    return nil, true
  end

  handler.error = function(element)
    if element.descriptor ~= 'it' then
      failed = failed + 1
      show_failure('error', handler.errors[#handler.errors])
    end
    return nil, true
  end

  handler.suiteEnd = function()
    say(('#summary passed=%d failed=%d skipped=%d'):format(passed, failed, skipped))
    return nil, true
  end

  busted.subscribe({ 'suite', 'end' }, handler.suiteEnd)
  busted.subscribe({ 'test', 'end' }, handler.testEnd, { predicate = handler.cancelOnPending })
  busted.subscribe({ 'error' }, handler.error)
  return handler
end
