-- README's one-invocation commands on a machine without the packages:
-- `make deps demo` / `make deps test` must install first and only then ask
-- pkg-config for flags. Simulated with a PATH where pkg-config fails until
-- the (fake) apt-get install has run, and dpkg-query reports nothing
-- installed. The build goes to a private BUILD directory.
local proc = require "rollout.proc"
local fs = require "rollout.fs"

local root = os.getenv("ROLLOUT_ROOT") or "."

local function script(path, text)
  assert(fs.write_atomic(path, "#!/bin/sh\n" .. text, { mode = tonumber("755", 8) }))
end

describe("make deps + build in one invocation", function()
  local dir, bin, stamp

  before_each(function()
    dir = assert(fs.mkdtemp("/tmp/rollout-make-"))
    bin = fs.join(dir, "bin")
    stamp = fs.join(dir, "installed")
    assert(fs.mkdir_p(bin))
    local real = assert(proc.which("pkg-config"), "pkg-config is needed for this test")
    -- pkg-config answers only once the packages are "installed"
    script(fs.join(bin, "pkg-config"), string.format(
      "[ -e %q ] || { echo \"pkg-config: package not found\" >&2; exit 1; }\nexec %q \"$@\"\n", stamp, real))
    script(fs.join(bin, "dpkg-query"), "exit 1\n")
    script(fs.join(bin, "apt-get"), string.format("case \"$*\" in *install*) touch %q;; esac\nexit 0\n", stamp))
    script(fs.join(bin, "sudo"), "exec \"$@\"\n")
  end)

  after_each(function()
    if dir then fs.remove_tree(dir) end
  end)

  local function make(goals)
    local argv = { "make", "-C", root, "BUILD=" .. fs.join(dir, "build"), "BIN=" .. fs.join(dir, "build", "rollout") }
    for _, g in ipairs(goals) do argv[#argv + 1] = g end
    local res = assert(proc.run {
      argv = argv, timeout = 600,
      env = { PATH = bin .. ":" .. os.getenv("PATH"), MAKEFLAGS = false, MFLAGS = false, MAKELEVEL = false,
              CFLAGS = false, LDFLAGS = false },
    })
    return res
  end

  it("fails without the packages (the simulation is real)", function()
    local r = make { fs.join(dir, "build", "rollout") }
    assert.is_not.equal(0, r.status)
    assert.matches("lua%.h", r.stdout .. r.stderr)
    assert.is_false(fs.exists(stamp))
  end)

  it("installs, then builds with the flags of the installed packages", function()
    local r = make { "deps", fs.join(dir, "build", "rollout") }
    assert.equal(0, r.status, r.stdout .. r.stderr)
    assert.is_true(fs.exists(stamp))
    local v = assert(proc.run { argv = { fs.join(dir, "build", "rollout"), "-v" }, timeout = 10 })
    assert.equal(0, v.status)
    assert.matches("^rollout %d", v.stdout)
  end)
end)
