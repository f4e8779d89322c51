-- rollout.fs through the Lua binding: read, atomic write (and that a failed
-- write changes nothing), inspection, directories, path strings, and locks
-- across processes and within one. Every process a test starts is stopped by
-- pid in finally().
local fs = require "rollout.fs"
local proc = require "rollout.proc"
local time = require "rollout.time"

local BIN = os.getenv("ROLLOUT_BIN") or require("rollout.sys").exe

local wait_for = require("tests.helpers.check").wait

local tmp
setup(function() tmp = assert(fs.mkdtemp("rollout-fs-spec-")) end)
teardown(function() if tmp then fs.remove_tree(tmp) end end)

-- A fresh directory per test.
local n = 0
local function dir()
  n = n + 1
  local d = fs.join(tmp, "t" .. n)
  assert(fs.mkdir_p(d))
  return d
end

describe("fs.read", function()
  it("returns the content, binary included", function()
    local d = dir()
    local data = "a\0b\255\n" .. string.rep("x", 100000)
    assert(fs.write_atomic(fs.join(d, "f"), data))
    assert.equal(data, fs.read(fs.join(d, "f")))
    assert(fs.write_atomic(fs.join(d, "empty"), ""))
    assert.equal("", fs.read(fs.join(d, "empty")))
  end)

  it("returns nil, message, code on failure", function()
    local d = dir()
    local ok, msg, code = fs.read(fs.join(d, "missing"))
    assert.is_nil(ok)
    assert.equal(fs.join(d, "missing") .. ": No such file or directory", msg)
    assert.equal("ENOENT", code)
    ok, msg, code = fs.read(d)
    assert.is_nil(ok)
    assert.equal("EISDIR", code)
    assert.has_error(function() fs.read(nil) end)
    assert.has_error(function() fs.read("a\0b") end)
  end)
end)

describe("fs.write_atomic", function()
  it("creates and replaces files with the given mode, leaving no temp file", function()
    local d = dir()
    local p = fs.join(d, "TRAFFIC.yaml")
    assert.is_true(fs.write_atomic(p, "one"))
    assert.equal("one", fs.read(p))
    assert.equal(420, fs.stat(p).mode) -- 0644
    assert.is_true(fs.write_atomic(p, "two", { mode = 384, fsync = false })) -- 0600
    assert.equal("two", fs.read(p))
    assert.equal(384, fs.stat(p).mode)
    assert.same({ "TRAFFIC.yaml" }, fs.list(d))
  end)

  it("writes relative paths in the current directory", function()
    local d = dir()
    local r = assert(proc.run { argv = { BIN, "-e", 'assert(require"rollout.fs".write_atomic("rel.txt", "hi"))' },
                                cwd = d, timeout = 10 })
    assert.equal(0, r.status, r.stderr)
    assert.equal("hi", fs.read(fs.join(d, "rel.txt")))
    assert.same({ "rel.txt" }, fs.list(d))
  end)

  it("changes nothing when the target is a directory", function()
    local d = dir()
    local target = fs.join(d, "target")
    assert(fs.mkdir_p(target))
    assert(fs.write_atomic(fs.join(target, "inside"), "keep"))
    local ok, msg, code = fs.write_atomic(target, "data")
    assert.is_nil(ok)
    assert.equal("EISDIR", code)
    assert.matches("target: Is a directory", msg)
    assert.equal("directory", fs.stat(target).type)
    assert.same({ "inside" }, fs.list(target))
    assert.same({ "target" }, fs.list(d)) -- no temp file left
  end)

  it("fails cleanly when the directory is missing", function()
    local d = dir()
    local ok, _, code = fs.write_atomic(fs.join(d, "missing", "f"), "data")
    assert.is_nil(ok)
    assert.equal("ENOENT", code)
    assert.same({}, fs.list(d))
  end)

  it("leaves the target and no temp file when writing fails midway (EFBIG)", function()
    local d = dir()
    local p = fs.join(d, "state")
    assert(fs.write_atomic(p, "old content"))
    -- a file size limit of 512 bytes; SIGXFSZ ignored so write() fails with EFBIG
    local code = ('local ok, msg, code = require"rollout.fs".write_atomic(%q, string.rep("x", 100000)); io.write(tostring(code))'):format(p)
    local r = assert(proc.run { argv = { "sh", "-c", 'trap "" XFSZ; ulimit -f 1; exec "$0" -e "$1"', BIN, code },
                                timeout = 10 })
    assert.equal(0, r.status, r.stderr)
    assert.equal("EFBIG", r.stdout)
    assert.equal("old content", fs.read(p))
    assert.same({ "state" }, fs.list(d))
  end)

  it("refuses a read-only directory when not root", function()
    local d = dir()
    local ro = fs.join(d, "ro")
    assert(fs.mkdir_p(ro, 365)) -- 0555
    local ok, _, code = fs.write_atomic(fs.join(ro, "f"), "data")
    if proc.run { argv = { "id", "-u" } }.stdout == "0\n" then
      assert.is_true(ok) -- root ignores permissions; the write went through atomically
      assert.equal("data", fs.read(fs.join(ro, "f")))
      assert.same({ "f" }, fs.list(ro))
    else
      assert.is_nil(ok)
      assert.equal("EACCES", code)
      assert.same({}, fs.list(ro))
    end
  end)

  it("raises on misuse", function()
    local d = dir()
    assert.has_error(function() fs.write_atomic(fs.join(d, "f"), nil) end)
    assert.has_error(function() fs.write_atomic(fs.join(d, "f"), "x", { mode = "0644" }) end)
    assert.has_error(function() fs.write_atomic(fs.join(d, "f"), "x", { mode = 99999 }) end)
    assert.same({}, fs.list(d))
  end)
end)

describe("fs.exists and fs.stat", function()
  it("describes files, directories, links and others", function()
    local d = dir()
    local f = fs.join(d, "f")
    assert(fs.write_atomic(f, "12345", { mode = 416 })) -- 0640
    local st = assert(fs.stat(f))
    assert.equal("file", st.type)
    assert.equal(5, st.size)
    assert.equal(416, st.mode)
    assert.is_true(math.abs(st.mtime - os.time()) < 60)
    assert.equal("directory", fs.stat(d).type)
    assert(proc.run { argv = { "ln", "-s", "f", fs.join(d, "link") } })
    assert.equal("link", fs.stat(fs.join(d, "link")).type)
    assert.equal("other", fs.stat("/dev/null").type)
    assert.is_true(fs.exists(f))
    assert.is_true(fs.exists(d))
    assert.is_true(fs.exists(fs.join(d, "link")))
    assert.is_false(fs.exists(fs.join(d, "missing")))
  end)

  it("fails with ENOENT for a missing path; exists follows links", function()
    local d = dir()
    local ok, msg, code = fs.stat(fs.join(d, "missing"))
    assert.is_nil(ok)
    assert.equal(fs.join(d, "missing") .. ": No such file or directory", msg)
    assert.equal("ENOENT", code)
    assert(proc.run { argv = { "ln", "-s", "nowhere", fs.join(d, "dangling") } })
    assert.is_false(fs.exists(fs.join(d, "dangling")))
    assert.equal("link", fs.stat(fs.join(d, "dangling")).type)
  end)
end)

describe("fs.mkdir_p", function()
  it("creates nested directories with the mode and accepts existing ones", function()
    local d = dir()
    local p = fs.join(d, "a", "b", "c")
    assert.is_true(fs.mkdir_p(p, 448)) -- 0700
    assert.equal("directory", fs.stat(p).type)
    assert.equal(448, fs.stat(p).mode)
    assert.is_true(fs.mkdir_p(p))
    assert.is_true(fs.mkdir_p(d .. "//x//y/"))
    assert.equal("directory", fs.stat(fs.join(d, "x", "y")).type)
  end)

  it("fails on a file in the way", function()
    local d = dir()
    local f = fs.join(d, "file")
    assert(fs.write_atomic(f, "x"))
    local ok, msg, code = fs.mkdir_p(fs.join(f, "sub"))
    assert.is_nil(ok)
    assert.equal("ENOTDIR", code)
    assert.matches("file", msg)
    ok, _, code = fs.mkdir_p(f)
    assert.is_nil(ok)
    assert.equal("EEXIST", code)
    assert.equal("file", fs.stat(f).type)
    assert.equal("x", fs.read(f))
  end)
end)

describe("fs.remove and fs.remove_tree", function()
  it("removes a file, a link (not its target) and an empty directory", function()
    local d = dir()
    local f = fs.join(d, "f")
    assert(fs.write_atomic(f, "x"))
    assert(proc.run { argv = { "ln", "-s", "f", fs.join(d, "link") } })
    assert.is_true(fs.remove(fs.join(d, "link")))
    assert.equal("x", fs.read(f))
    assert.is_true(fs.remove(f))
    assert.is_false(fs.exists(f))
    assert(fs.mkdir_p(fs.join(d, "empty")))
    assert.is_true(fs.remove(fs.join(d, "empty")))
    assert.same({}, fs.list(d))
  end)

  it("refuses a missing path and a non-empty directory", function()
    local d = dir()
    local ok, msg, code = fs.remove(fs.join(d, "missing"))
    assert.is_nil(ok)
    assert.equal("ENOENT", code)
    assert.equal(fs.join(d, "missing") .. ": No such file or directory", msg)
    assert(fs.mkdir_p(fs.join(d, "full")))
    assert(fs.write_atomic(fs.join(d, "full", "f"), "x"))
    ok, _, code = fs.remove(fs.join(d, "full"))
    assert.is_nil(ok)
    assert.equal("ENOTEMPTY", code)
    assert.equal("x", fs.read(fs.join(d, "full", "f")))
  end)

  it("removes a tree without following symlinks", function()
    local d = dir()
    local outside = fs.join(d, "outside")
    assert(fs.mkdir_p(outside))
    assert(fs.write_atomic(fs.join(outside, "precious"), "keep"))
    local tree = fs.join(d, "tree")
    assert(fs.mkdir_p(fs.join(tree, "a", "b", "c")))
    for _, f in ipairs { "x", "a/y", "a/b/z", "a/b/c/w" } do
      assert(fs.write_atomic(fs.join(tree, f), f))
    end
    assert(proc.run { argv = { "ln", "-s", outside, fs.join(tree, "a", "to-outside") } })
    assert(proc.run { argv = { "ln", "-s", fs.join(outside, "precious"), fs.join(tree, "to-file") } })
    assert.is_true(fs.remove_tree(tree))
    assert.is_false(fs.exists(tree))
    assert.equal("keep", fs.read(fs.join(outside, "precious")))
    assert.same({ "outside" }, fs.list(d))
    -- a symlink to a directory: the link goes, the directory stays
    assert(proc.run { argv = { "ln", "-s", outside, fs.join(d, "link") } })
    assert.is_true(fs.remove_tree(fs.join(d, "link")))
    assert.same({ "precious" }, fs.list(outside))
    -- a single file
    assert.is_true(fs.remove_tree(fs.join(outside, "precious")))
    assert.same({}, fs.list(outside))
  end)

  it("returns ENOENT for a missing tree and raises for / and empty paths", function()
    local d = dir()
    local ok, _, code = fs.remove_tree(fs.join(d, "missing"))
    assert.is_nil(ok)
    assert.equal("ENOENT", code)
    assert.has_error(function() fs.remove_tree("") end)
    assert.has_error(function() fs.remove_tree("/") end)
    assert.has_error(function() fs.remove_tree("//") end)
    assert.has_error(function() fs.remove_tree("/tmp/..") end)
    assert.has_error(function() fs.remove_tree(d .. "/.") end)
    assert.has_error(function() fs.remove_tree(nil) end)
    assert.is_true(fs.exists(d))
  end)
end)

describe("fs.list, realpath, mkdtemp", function()
  it("lists names sorted, without . and ..", function()
    local d = dir()
    for _, name in ipairs { "b", "a", "C", "a.txt" } do assert(fs.write_atomic(fs.join(d, name), "")) end
    assert(fs.mkdir_p(fs.join(d, "sub")))
    assert.same({ "C", "a", "a.txt", "b", "sub" }, fs.list(d))
    assert.same({}, fs.list(fs.join(d, "sub")))
    local ok, _, code = fs.list(fs.join(d, "missing"))
    assert.is_nil(ok)
    assert.equal("ENOENT", code)
    ok, _, code = fs.list(fs.join(d, "a"))
    assert.is_nil(ok)
    assert.equal("ENOTDIR", code)
  end)

  it("resolves real paths", function()
    local d = dir()
    assert(fs.write_atomic(fs.join(d, "f"), ""))
    assert(fs.mkdir_p(fs.join(d, "sub")))
    assert(proc.run { argv = { "ln", "-s", "f", fs.join(d, "link") } })
    local real = fs.realpath(fs.join(d, "link"))
    assert.equal(fs.realpath(d) .. "/f", real)
    assert.equal(fs.realpath(d) .. "/f", fs.realpath(d .. "/./sub/../f"))
    local ok, _, code = fs.realpath(fs.join(d, "missing"))
    assert.is_nil(ok)
    assert.equal("ENOENT", code)
  end)

  it("makes new private directories", function()
    local a = assert(fs.mkdtemp(fs.join(tmp, "x-")))
    local b = assert(fs.mkdtemp(fs.join(tmp, "x-")))
    assert.are_not.equal(a, b)
    assert.matches("^" .. tmp:gsub("%p", "%%%0") .. "/x%-", a)
    assert.equal("directory", fs.stat(a).type)
    assert.equal(448, fs.stat(a).mode) -- 0700
    local ok, _, code = fs.mkdtemp(fs.join(tmp, "missing", "x-"))
    assert.is_nil(ok)
    assert.equal("ENOENT", code)
  end)
end)

describe("path strings", function()
  it("joins", function()
    assert.equal("a/b", fs.join("a", "b"))
    assert.equal("a/b/c", fs.join("a/", "/b/", "c"))
    assert.equal("/b", fs.join("/", "b"))
    assert.equal("a", fs.join("a", ""))
    assert.equal("b", fs.join("", "b"))
    assert.equal("/", fs.join("/"))
    assert.equal("a", fs.join("a"))
    assert.has_error(function() fs.join() end)
    assert.has_error(function() fs.join("a", {}) end)
  end)

  local cases = {
    -- path, dirname, basename (POSIX)
    { "a/b", "a", "b" },
    { "a/b/", "a", "b" },
    { "a", ".", "a" },
    { "/a", "/", "a" },
    { "/", "/", "/" },
    { "//", "/", "/" },
    { "", ".", "." },
    { "/usr//lib//", "/usr", "lib" },
    { "deployments/microservice-1/TRAFFIC.yaml", "deployments/microservice-1", "TRAFFIC.yaml" },
  }
  for _, c in ipairs(cases) do
    it(("dirname/basename of %q"):format(c[1]), function()
      assert.equal(c[2], fs.dirname(c[1]))
      assert.equal(c[3], fs.basename(c[1]))
    end)
  end
end)

describe("fs.lock", function()
  -- Another rollout that takes the lock, says so, then holds it `hold` seconds.
  local function holder(path, ready, hold, extra)
    local code = ([[
      local fs = require "rollout.fs"
      local l = assert(fs.lock(%q, { what = "microservice-1" }))
      %s
      assert(fs.write_atomic(%q, "ready"))
      require("rollout.time").sleep(%s)
      l:unlock()
    ]]):format(path, extra or "", ready, hold)
    return assert(proc.spawn { argv = { BIN, "-e", code }, log = ready .. ".log" })
  end

  local function reaper()
    local pids = {}
    return function(pid) pids[#pids + 1] = pid end, function()
      for _, pid in ipairs(pids) do
        if proc.alive(pid) then proc.kill(pid, "KILL") end
      end
    end
  end

  it("holds the lock, records the holder, unlocks idempotently", function()
    local d = dir()
    local p = fs.join(d, "svc.lock")
    local l = assert(fs.lock(p, { what = "microservice-1" }))
    assert.equal(p, l:path())
    assert.equal(proc.pid() .. " microservice-1\n", fs.read(p))
    assert.equal(384, fs.stat(p).mode) -- 0600
    assert.matches("rollout.fs.lock", tostring(l))
    assert.is_true(l:unlock())
    assert.is_true(l:unlock())
    assert.equal("", fs.read(p))
    assert.has_error(function() l:path() end, "attempt to use a closed lock")
  end)

  it("refuses a second lock in the same process", function()
    local d = dir()
    local p = fs.join(d, "svc.lock")
    local l1 = assert(fs.lock(p, { what = "microservice-1" }))
    local l2, msg, code = fs.lock(p, { what = "microservice-1" })
    assert.is_nil(l2)
    assert.equal("another rollout is working on microservice-1 (pid " .. proc.pid() .. ")", msg)
    assert.equal("locked", code)
    assert.equal(proc.pid() .. " microservice-1\n", fs.read(p)) -- the refusal changed nothing
    l1:unlock()
    local l3 = assert(fs.lock(p))
    l3:unlock()
  end)

  it("is released by __close and by __gc", function()
    local d = dir()
    local p = fs.join(d, "svc.lock")
    do
      local l <close> = assert(fs.lock(p))
      assert.is_nil((fs.lock(p)))
    end
    local l = assert(fs.lock(p))
    l = nil -- luacheck: ignore
    collectgarbage()
    collectgarbage()
    local again = assert(fs.lock(p))
    again:unlock()
  end)

  it("refuses a lock held by another process, waits for it, times out", function()
    local track, stop_all = reaper()
    finally(stop_all)
    local d = dir()
    local p, ready = fs.join(d, "svc.lock"), fs.join(d, "ready")
    local pid = holder(p, ready, 1.0)
    track(pid)
    assert.is_truthy(wait_for(function() return fs.exists(ready) end, 10), fs.read(ready .. ".log"))
    local l, msg, code = fs.lock(p)
    assert.is_nil(l)
    assert.equal("another rollout is working on microservice-1 (pid " .. pid .. ")", msg)
    assert.equal("locked", code)
    local t0 = time.now()
    l, msg, code = fs.lock(p, { wait = true, timeout = 0.2, what = "microservice-1" })
    assert.is_nil(l)
    assert.equal("timeout", code)
    assert.matches("^timed out waiting for microservice%-1", msg)
    assert.is_true(time.now() - t0 >= 0.2)
    -- the holder lets go after about a second
    l, msg = fs.lock(p, { wait = true, timeout = 10, what = "microservice-1" })
    assert.is_not_nil(l, msg)
    assert.equal(proc.pid() .. " microservice-1\n", fs.read(p))
    l:unlock()
    assert.is_true(wait_for(function() return not proc.alive(pid) end))
  end)

  it("is freed when its holder is killed, even with a daemon of the holder alive", function()
    local track, stop_all = reaper()
    finally(stop_all)
    local d = dir()
    local p, ready, dpid = fs.join(d, "svc.lock"), fs.join(d, "ready"), fs.join(d, "daemon.pid")
    -- the holder also starts a daemon: it must not inherit the lock
    local pid = holder(p, ready, 60, ('require"rollout.proc".spawn{argv={"sleep","60"}, pidfile=%q}'):format(dpid))
    track(pid)
    assert.is_truthy(wait_for(function() return fs.exists(ready) end, 10), fs.read(ready .. ".log"))
    local daemon = math.tointeger(fs.read(dpid):match("%d+"))
    track(daemon)
    assert.is_nil((fs.lock(p)))
    assert.is_true(proc.kill(pid, "KILL"))
    assert.is_true(wait_for(function() return not proc.alive(pid) end))
    assert.is_true(proc.alive(daemon))
    local l, msg = fs.lock(p)
    assert.is_not_nil(l, msg)
    l:unlock()
  end)

  it("stops waiting on ^C", function()
    local track, stop_all = reaper()
    finally(stop_all)
    local d = dir()
    local p, log = fs.join(d, "svc.lock"), fs.join(d, "waiter.log")
    local l = assert(fs.lock(p, { what = "microservice-1" }))
    finally(function() l:unlock() end)
    local pid = assert(proc.spawn { argv = { BIN, "-e",
      ('require"rollout.fs".lock(%q, {wait = true}); print("got it")'):format(p) }, log = log })
    track(pid)
    time.sleep(0.3)
    assert.is_true(proc.alive(pid))
    assert.is_true(proc.kill(pid, "INT"))
    assert.is_true(wait_for(function() return not proc.alive(pid) end, 2))
    local out = fs.read(log)
    assert.matches("interrupted", out)
    assert.is_nil(out:find("got it", 1, true))
    assert.equal(proc.pid() .. " microservice-1\n", fs.read(p))
  end)

  it("fails with nil, message, code when the file cannot be opened", function()
    local d = dir()
    local l, _, code = fs.lock(fs.join(d, "missing", "svc.lock"))
    assert.is_nil(l)
    assert.equal("ENOENT", code)
    l, _, code = fs.lock(d)
    assert.is_nil(l)
    assert.equal("EISDIR", code)
    assert.has_error(function() fs.lock(fs.join(d, "x.lock"), { what = "two\nlines" }) end)
    assert.is_false(fs.exists(fs.join(d, "x.lock")))
  end)
end)
