-- The experiment DSL: loads an experiment file, follows `extends`, expands sweeps and seeds, overlays a scale,
-- validates every key against lua/schema.lua (messages name file:line, the key path, what was expected, and a
-- "did you mean" for unknown keys), fills in defaults, and serialises each resolved run canonically (sorted keys,
-- Lua syntax) so that C can hash it into the run id. Lua never touches tensors: C reads the resolved runs into the
-- trainer's config (lua/toconfig.c) and samples schedule functions through M.sample.
--
-- Precedence, lowest first: schema defaults < bases (the file's extends chain, then each sweep overlay's extends)
-- < the file's own keys < the scale's keys < sweep values (in axis order) < command-line overrides < the seed axis.
-- A scale overlays the protocol; sweep values are what the experiment compares, so they win over it; a scale that
-- must change a swept key (the data set, the length of training) replaces that axis (scales.<name>.sweep).
local S = require("schema")
local keylines = require("keylines")

local M = {}

-- Set by the embedding (lua/lua_exp.c): sha256(text) -> hex, cuda_available() -> bool, experiments_dir.
M.host = {
  sha256 = nil,
  cuda_available = function() return false end,
  experiments_dir = "experiments",
}

local RUNKEY, STRUCTKEY = {}, {}
for _, e in ipairs(S.run) do RUNKEY[e.key] = e end
for _, e in ipairs(S.structure) do STRUCTKEY[e.key] = e end

-- Keys allowed besides the run keys, per kind of table.
local CONTEXT = {
  experiment = { extends = true, name = true, title = true, notes = true, seeds = true, sweep = true, scales = true,
                 report = true },
  overlay = { label = true, paper = true, extends = true, seeds = true, notes = true },
  scale = { extends = true, sweep = true, seeds = true, notes = true },
}
local PAPER_FIELDS = { method = "string", variant = "string", dataset = "string", epochs = "integer",
                       table = "string" }

---------------------------------------------------------------------------------------------------------------------
-- files, origins and locations

local files = {}  -- path -> {info = keylines scan, src = text}
local cache = {}  -- path -> returned table
local origin = setmetatable({}, { __mode = "k" }) -- table -> {file, path}

local function tag(t, file, path)
  if type(t) ~= "table" or origin[t] then return end
  origin[t] = { file = file, path = path }
  for k, v in pairs(t) do
    if type(v) == "table" then
      local p = { table.unpack(path) }
      p[#p + 1] = k
      tag(v, file, p)
    end
  end
end

-- "file:line" of key `k` of table `t` (k nil: the table itself).
local function where(t, k)
  local o = t and origin[t]
  if not o then return "(built-in)" end
  local p = { table.unpack(o.path) }
  if k ~= nil then p[#p + 1] = k end
  local line = keylines.lookup(files[o.file] and files[o.file].info, p)
  return o.file .. ":" .. (line or 1)
end

local function fn_where(f)
  local info = debug.getinfo(f, "S")
  return (info.short_src or "?") .. ":" .. (info.linedefined or 0)
end

-- The source text of a Lua function (its lines in its file), for the canonical form.
local function fn_source(f)
  local info = debug.getinfo(f, "S")
  local file = info.source and info.source:match("^@(.*)")
  local src = file and files[file] and files[file].src
  if not src or info.linedefined < 1 then return "<function " .. fn_where(f) .. ">" end
  local lines, n = {}, 0
  for l in (src .. "\n"):gmatch("(.-)\n") do
    n = n + 1
    if n >= info.linedefined and n <= info.lastlinedefined then lines[#lines + 1] = l:match("^%s*(.-)%s*$") end
    if n > info.lastlinedefined then break end
  end
  return table.concat(lines, "\n")
end

---------------------------------------------------------------------------------------------------------------------
-- errors

local Errors = {}
Errors.__index = Errors
local function new_errors() return setmetatable({ list = {} }, Errors) end
function Errors:add(loc, keypath, msg)
  local text = loc .. ": " .. (keypath and (keypath .. ": ") or "") .. msg
  for _, e in ipairs(self.list) do if e.text == text then return end end
  local file, line = loc:match("^(.*):(%d+)$")
  self.list[#self.list + 1] = { text = text, file = file or loc, line = tonumber(line) or 0, n = #self.list }
end
-- Raises every message recorded so far, in file and line order.
function Errors:raise()
  if #self.list == 0 then return end
  table.sort(self.list, function(a, b)
    if a.file ~= b.file then return a.file < b.file end
    if a.line ~= b.line then return a.line < b.line end
    return a.n < b.n
  end)
  local out = {}
  for i, e in ipairs(self.list) do out[i] = e.text end
  error({ rsa_errors = out }, 0)
end
local function fail(msg) error({ rsa_errors = { msg } }, 0) end

local function distance(a, b)
  local la, lb = #a, #b
  local prev = {}
  for j = 0, lb do prev[j] = j end
  for i = 1, la do
    local cur = { [0] = i }
    for j = 1, lb do
      local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[lb]
end

-- " (did you mean 'x'?)" for the candidate nearest to `word`, if near enough.
local function suggest(word, candidates)
  if type(word) ~= "string" then return "" end
  local best, bd
  for _, c in ipairs(candidates) do
    local d = distance(word:lower(), c:lower())
    if not bd or d < bd or (d == bd and c < best) then best, bd = c, d end
  end
  if best and bd <= math.max(2, #word // 3) then return " (did you mean '" .. best .. "'?)" end
  return ""
end

local function show(v)
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) == "table" then return "a table" end
  if type(v) == "function" then return "a function" end
  return tostring(v)
end

local function sorted_keys(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  table.sort(ks, function(a, b)
    if type(a) == type(b) then return a < b end
    return type(a) == "number"
  end)
  return ks
end

---------------------------------------------------------------------------------------------------------------------
-- validation of values against schema entries

local function describe(e)
  local t = e.type
  local d
  if t == "integer" then d = "an integer"
  elseif t == "number" then d = "a number"
  elseif t == "string" then d = "a string"
  elseif t == "boolean" then d = "true or false"
  elseif t == "enum" then d = "one of " .. table.concat(e.allowed, ", ")
  elseif t == "schedule" then d = "a function(p, s) or one of " .. table.concat(e.allowed, ", ")
  elseif t == "list" then d = "a list of " .. (e.len and (e.len .. " ") or "") .. e.of .. "s"
  elseif t == "struct" then
    d = "a table" .. (e.presets and (" or one of " .. table.concat(sorted_keys(e.presets), ", ")) or "")
  else d = "a value" end
  if e.min and e.max then d = d .. " in [" .. e.min .. ", " .. e.max .. "]"
  elseif e.min then d = d .. " >= " .. e.min
  elseif e.max then d = d .. " <= " .. e.max end
  for _, w in ipairs(e.words or {}) do d = d .. " or \"" .. w .. "\"" end
  return d
end

-- Checks value v of schema entry e; returns the normalised value (integers as integers, numbers as floats), or
-- nil after recording an error. loc: "file:line"; kp: key path for the message.
local function check_value(e, v, loc, kp, errs)
  local function bad(extra)
    errs:add(loc, kp, "expected " .. describe(e) .. ", got " .. show(v) .. (extra or ""))
    return nil
  end
  local t = e.type
  local function range(x)
    if (e.min and x < e.min) or (e.max and x > e.max) then return bad() end
    return x
  end
  if t == "any" then return v end
  if t == "string" then return type(v) == "string" and v or bad() end
  if t == "boolean" then
    if type(v) ~= "boolean" then return bad() end
    return v
  end
  if t == "integer" then
    if type(v) == "string" and e.words then
      for _, w in ipairs(e.words) do if w == v then return v end end
      return bad(suggest(v, e.words))
    end
    if math.type(v) == "float" and v == math.floor(v) and v == v and math.abs(v) < 2 ^ 53 then v = math.tointeger(v) end
    if math.type(v) ~= "integer" then return bad() end
    return range(v)
  end
  if t == "number" then
    if type(v) ~= "number" or v ~= v or v == math.huge or v == -math.huge then return bad() end
    return range(v + 0.0)
  end
  if t == "enum" or t == "schedule" then
    if t == "schedule" and type(v) == "function" then return v end
    if type(v) ~= "string" then return bad() end
    for _, a in ipairs(e.allowed) do if a == v then return v end end
    return bad(suggest(v, e.allowed))
  end
  if t == "list" then
    if type(v) ~= "table" then return bad() end
    local n = #v
    for k in pairs(v) do
      if math.type(k) ~= "integer" or k < 1 or k > n then return bad(" (with non-list key " .. show(k) .. ")") end
    end
    if e.len and n ~= e.len then return bad(" of " .. n .. " elements") end
    local out, elem = {}, { type = e.of, min = e.min, max = e.max }
    for i = 1, n do
      local x = check_value(elem, v[i], where(v, i), kp .. "[" .. i .. "]", errs)
      if x == nil then return nil end
      out[i] = x
    end
    return out
  end
  if t == "struct" then
    if type(v) == "string" then
      if e.presets and e.presets[v] then return v end
      return bad(e.presets and suggest(v, sorted_keys(e.presets)) or "")
    end
    if type(v) ~= "table" then return bad() end
    local out, names, ok = {}, {}, true
    local fields = {}
    for _, f in ipairs(e.fields) do fields[f.key], names[#names + 1] = f, f.key end
    for _, k in ipairs(sorted_keys(v)) do
      local f = fields[k]
      if not f then
        errs:add(where(v, k), kp .. "." .. tostring(k), "unknown key" .. suggest(k, names) ..
                 " (keys of " .. kp .. ": " .. table.concat(names, ", ") .. ")")
        ok = false
      else
        local x = check_value(f, v[k], where(v, k), kp .. "." .. k, errs)
        if x == nil then ok = false else out[k] = x end
      end
    end
    return ok and out or nil
  end
  error("schema: unknown type " .. tostring(t))
end

local function all_names(context)
  local names = {}
  for _, e in ipairs(S.run) do names[#names + 1] = e.key end
  for k in pairs(CONTEXT[context]) do names[#names + 1] = k end
  table.sort(names)
  return names
end

local validated = setmetatable({}, { __mode = "k" })

-- Validates the keys of a table of kind `context` (experiment, overlay, scale); kp prefixes key paths.
local function validate_table(t, context, kp, errs)
  if validated[t] then return end
  validated[t] = true
  local allowed = CONTEXT[context]
  local pre = kp and (kp .. ".") or ""
  for _, k in ipairs(sorted_keys(t)) do
    local v, loc, path = t[k], where(t, k), pre .. tostring(k)
    if type(k) ~= "string" then
      errs:add(loc, kp or "(top level)", "unexpected list item " .. show(v) .. " (this table takes key = value pairs)")
    elseif RUNKEY[k] then
      check_value(RUNKEY[k], v, loc, path, errs)
    elseif allowed[k] then
      local se = STRUCTKEY[k]
      if k == "extends" then
        if type(v) ~= "string" and type(v) ~= "table" then
          errs:add(loc, path, "expected a file name or a table, got " .. show(v))
        end
      elseif k == "paper" then
        if type(v) ~= "table" then
          errs:add(loc, path, "expected a table {method=, variant=, dataset=, epochs=}, got " .. show(v))
        else
          local names = sorted_keys(PAPER_FIELDS)
          for _, pk in ipairs(sorted_keys(v)) do
            if not PAPER_FIELDS[pk] then
              errs:add(where(v, pk), path .. "." .. tostring(pk), "unknown key" .. suggest(pk, names))
            else
              check_value({ type = PAPER_FIELDS[pk] }, v[pk], where(v, pk), path .. "." .. pk, errs)
            end
          end
        end
      elseif k == "sweep" or k == "scales" then
        if type(v) ~= "table" then errs:add(loc, path, "expected a table, got " .. show(v)) end
      else
        check_value(se, v, loc, path, errs)
      end
    else
      errs:add(loc, path, "unknown key" .. suggest(k, all_names(context)) ..
               " (`rsa help config` lists the keys)")
    end
  end
end

---------------------------------------------------------------------------------------------------------------------
-- loading files

local function dirname(p) return p:match("^(.*)/[^/]*$") or "." end
local function exists(p)
  local f = io.open(p, "rb")
  if f then f:close() return true end
  return false
end

-- Finds `name` relative to the file `from` (a path), then to the experiments directory.
local function find_file(name, from, loc)
  local tries = {}
  if name:sub(1, 1) == "/" then tries = { name }
  else
    if from then tries[#tries + 1] = dirname(from) .. "/" .. name end
    tries[#tries + 1] = M.host.experiments_dir .. "/" .. name
    tries[#tries + 1] = name
  end
  for _, p in ipairs(tries) do
    if exists(p) then return (p:gsub("^%./", "")) end
  end
  fail((loc or "") .. (loc and ": " or "") .. "cannot find " .. name .. " (looked in: " .. table.concat(tries, ", ") .. ")")
end

local load_file

local function cosine(a, b)
  b = b or 0
  return function(p) return b + (a - b) * (math.cos(math.pi * p) + 1) / 2 end
end

local function make_env(path)
  local env = {
    math = math, string = string, table = table, ipairs = ipairs, pairs = pairs, tostring = tostring,
    tonumber = tonumber, type = type, select = select, error = error, assert = assert, next = next, pcall = pcall,
    setmetatable = setmetatable, getmetatable = getmetatable, rawget = rawget, rawset = rawset, rawlen = rawlen,
    utf8 = utf8,
  }
  -- include("file.lua"): the value another file returns (tables keep their own file:line for messages)
  env.include = function(name) return load_file(find_file(name, path)) end
  -- schedule helpers: functions of progress p in [0, 1]
  env.cosine = cosine
  env.linear = function(a, b) return function(p) return a + (b - a) * p end end
  env.constant = function(a) return function() return a end end
  env.warmup_cosine = function(peak, warm, final)
    final = final or 0
    return function(p)
      if p < warm then return peak * p / warm end
      return final + (peak - final) * (math.cos(math.pi * (p - warm) / (1 - warm)) + 1) / 2
    end
  end
  -- merge(a, b, ...): a new table with the keys of each argument in turn (later ones win)
  env.merge = function(...) return M.merge(...) end
  return env
end

function M.merge(...)
  local out = {}
  for i = 1, select("#", ...) do
    local t = select(i, ...)
    if t ~= nil then
      if type(t) ~= "table" then error("merge: argument " .. i .. " is " .. type(t) .. ", not a table", 2) end
      for k, v in pairs(t) do out[k] = v end
    end
  end
  return out
end

load_file = function(path)
  if cache[path] then return cache[path] end
  local fh, err = io.open(path, "rb")
  if not fh then fail(path .. ": cannot read: " .. tostring(err)) end
  local src = fh:read("a")
  fh:close()
  files[path] = { src = src, info = keylines.scan(src) }
  local chunk, perr = load(src, "@" .. path, "t", make_env(path))
  if not chunk then fail(perr) end
  local ok, val = xpcall(chunk, function(e)
    if type(e) == "table" then return e end
    return debug.traceback(tostring(e), 2)
  end)
  if not ok then
    if type(val) == "table" then error(val, 0) end
    fail((val:gsub("\nstack traceback:.*", "")))
  end
  if type(val) ~= "table" then
    fail(path .. ":1: an experiment file must return a table, this one returns " .. type(val))
  end
  tag(val, path, {})
  cache[path] = val
  return val
end
M.load_file = load_file

-- The extends chain of t, base first, t last; every table validated as `context`.
local function flatten(t, context, kp, from_file, errs, seen)
  seen = seen or {}
  if seen[t] then fail(where(t) .. ": extends forms a cycle") end
  seen[t] = true
  validate_table(t, context, kp, errs)
  local chain = {}
  local base = t.extends
  if base ~= nil then
    local bt
    if type(base) == "string" then
      local o = origin[t]
      bt = load_file(find_file(base, o and o.file or from_file, where(t, "extends")))
      -- a file is validated as an experiment file (it may hold scales, sweeps...), whoever extends it
      for _, b in ipairs(flatten(bt, "experiment", nil, nil, errs, seen)) do
        chain[#chain + 1] = b
      end
    elseif type(base) == "table" then
      for _, b in ipairs(flatten(base, context, kp and (kp .. ".extends") or "extends", nil, errs, seen)) do
        chain[#chain + 1] = b
      end
    end
  end
  chain[#chain + 1] = t
  return chain
end

---------------------------------------------------------------------------------------------------------------------
-- canonical serialisation

local function fmt_number(x)
  if math.type(x) == "integer" then return string.format("%d", x) end
  if x ~= x then return "0/0" end
  if x == math.huge then return "1/0" end
  if x == -math.huge then return "-1/0" end
  for prec = 15, 17 do
    local s = string.format("%." .. prec .. "g", x)
    if tonumber(s) == x then
      if not s:find("[%.eEn]") then s = s .. ".0" end
      return s
    end
  end
  return string.format("%.17g", x)
end
M.fmt_number = fmt_number

local function ser(v, indent)
  local t = type(v)
  if t == "number" then return fmt_number(v) end
  if t == "string" then return string.format("%q", v) end
  if t == "boolean" then return tostring(v) end
  if t == "table" then
    local ks = sorted_keys(v)
    local n = #v
    local parts = {}
    local list = true
    for _, k in ipairs(ks) do if math.type(k) ~= "integer" or k < 1 or k > n then list = false end end
    for _, k in ipairs(ks) do
      local key
      if list then key = ""
      elseif type(k) == "string" and k:match("^[%a_][%w_]*$") then key = k .. " = "
      else key = "[" .. ser(k) .. "] = " end
      parts[#parts + 1] = key .. ser(v[k]) -- nested tables inline: one key a line at the top level
    end
    if #parts == 0 then return "{}" end
    if indent then
      return "{\n" .. indent .. "  " .. table.concat(parts, ",\n" .. indent .. "  ") .. ",\n" .. indent .. "}"
    end
    return "{ " .. table.concat(parts, ", ") .. " }"
  end
  error("cannot serialise a " .. t)
end
M.serialise = function(v) return ser(v) end

-- Probes a schedule function at 1001 points of progress; returns the values as text (hashed into the run id).
local function probe(f, vals, kind, loc)
  local out = {}
  for i = 0, 1000 do
    local p = i / 1000
    local s = { step = i, steps = 1000, epoch = i // 10, steps_per_epoch = 10, beta_base = vals.beta_base,
                base_lr = vals.lr }
    local ok, y = pcall(f, p, s)
    if not ok then fail(loc .. ": " .. kind .. " failed at progress " .. p .. ": " .. tostring(y)) end
    if type(y) ~= "number" or y ~= y then
      fail(loc .. ": " .. kind .. " must return a number, returned " .. show(y) .. " at progress " .. p)
    end
    out[#out + 1] = string.format("%.9g", y)
  end
  return table.concat(out, " ")
end

-- The canonical text of a resolved run (identity keys only) and the text of its other settings. A data-parallel
-- world (world > 1) is part of the identity: per-process BN statistics change the numbers. A key added to the
-- schema after runs existed (hash = "unless_default") joins the identity only away from its default, so the ids
-- of runs that never set it stay what they were.
local function canonical(vals, world)
  local ident, other = {}, {}
  if world and world > 1 then ident.world_size = world end
  for _, e in ipairs(S.run) do
    local v = vals[e.key]
    if type(v) == "function" then
      local pt = probe(v, vals, e.key, fn_where(v))
      v = { source = fn_source(v), probe = M.host.sha256 and M.host.sha256(pt) or pt }
    end
    if e.hash == false or (e.hash == "unless_default" and v == e.default) then other[e.key] = v
    else ident[e.key] = v end
  end
  return ser(ident, ""), ser(other, "")
end

---------------------------------------------------------------------------------------------------------------------
-- sweeps, scales, resolution

-- Normalises a sweep table into a list of axes {name, values = {...}, tbl, loc}.
local function axes_of(sweep, kp, errs)
  local axes = {}
  local function add(name, values, holder)
    local loc = where(holder, name)
    if type(name) ~= "string" then
      errs:add(loc, kp, "an axis name must be a string, got " .. show(name))
      return
    end
    if type(values) ~= "table" or #values == 0 then
      errs:add(loc, kp .. "." .. name, "expected a non-empty list of values, got " .. show(values))
      return
    end
    if not RUNKEY[name] then
      for i, v in ipairs(values) do
        if type(v) ~= "table" then
          errs:add(where(values, i), kp .. "." .. name,
                   "'" .. name .. "' is not a run key, so its values must be overlay tables {label = ..., key = value}" ..
                   suggest(name, all_names("overlay")))
          break
        end
      end
    end
    axes[#axes + 1] = { name = name, values = values, holder = holder, loc = loc }
  end
  if #sweep > 0 then
    for i, item in ipairs(sweep) do
      if type(item) ~= "table" then
        errs:add(where(sweep, i), kp .. "[" .. i .. "]", "expected a one-key table {axis = {values}}, got " .. show(item))
      else
        local ks = sorted_keys(item)
        if #ks ~= 1 then
          errs:add(where(sweep, i), kp .. "[" .. i .. "]", "each item of a sweep list is {axis = {values}}, this has " ..
                   #ks .. " keys")
        else
          add(ks[1], item[ks[1]], item)
        end
      end
    end
  else
    for _, k in ipairs(sorted_keys(sweep)) do add(k, sweep[k], sweep) end
  end
  return axes
end

-- Validates one axis value; returns {label, overlay = table or nil, key/value for a scalar}.
local function axis_value(axis, i, kp, errs)
  local v = axis.values[i]
  local loc = where(axis.values, i)
  local path = kp .. "." .. axis.name .. "[" .. i .. "]"
  if type(v) == "table" then
    validate_table(v, "overlay", path, errs)
    local label = v.label
    if label == nil and RUNKEY[axis.name] and v[axis.name] ~= nil then label = tostring(v[axis.name]) end
    if label == nil then
      errs:add(loc, path, "an overlay needs a label (label = \"...\")")
      label = "?"
    end
    return { label = label, overlay = v }
  end
  local e = RUNKEY[axis.name]
  if not e then return { label = tostring(v) } end -- reported by axes_of: not a run key
  local x = check_value(e, v, loc, path, errs)
  local label = type(x) == "number" and fmt_number(x) or tostring(x)
  return { label = label, key = axis.name, value = x, loc = loc }
end

local function struct_resolve(e, layers, vals)
  local cur = e.default
  if type(cur) == "function" then cur = cur(vals) end
  local function expand(v)
    if type(v) == "string" then
      local p = e.presets[v]
      local out = {}
      for k, x in pairs(p) do out[k] = type(x) == "table" and { table.unpack(x) } or x end
      return out
    end
    return v
  end
  cur = expand(cur)
  for _, v in ipairs(layers) do
    if type(v) == "string" then cur = expand(v)
    else
      local n = {}
      for k, x in pairs(cur) do n[k] = x end
      for k, x in pairs(v) do n[k] = x end
      cur = n
    end
  end
  for _, f in ipairs(e.fields) do if cur[f.key] == nil then cur[f.key] = f.default end end
  return cur
end

-- Applies layers (tables of keys) in order; returns vals and src (key -> {tbl, key} of the layer that set it).
local function resolve(layers, errs)
  local vals, src, structs = {}, {}, {}
  for _, layer in ipairs(layers) do
    local t = layer.tbl
    for _, e in ipairs(S.run) do
      local v = t[e.key]
      if v ~= nil then
        local x = check_value(e, v, layer.loc or where(t, e.key), e.key, errs)
        if x ~= nil then
          if e.type == "struct" then
            structs[e.key] = structs[e.key] or {}
            table.insert(structs[e.key], x)
          else
            vals[e.key] = x
          end
          src[e.key] = { tbl = t, key = e.key, loc = layer.loc }
        end
      end
    end
  end
  errs:raise()
  for _, e in ipairs(S.run) do
    if e.type == "struct" then
      vals[e.key] = struct_resolve(e, structs[e.key] or {}, vals)
    elseif vals[e.key] == nil then
      local d = e.default
      if type(d) == "function" then d = d(vals) end
      if type(d) == "table" then d = { table.unpack(d) } end
      vals[e.key] = d
    end
  end
  if vals.backend == "auto" then vals.backend = M.host.cuda_available() and "cuda" or "cpu" end
  -- normalise (integers as integers, numbers as floats) defaults too, so that the canonical form is unique
  for _, e in ipairs(S.run) do
    if e.type ~= "struct" and type(vals[e.key]) ~= "function" then
      local x = check_value(e, vals[e.key], "(schema default)", e.key, errs)
      if x ~= nil then vals[e.key] = x end
    end
  end
  errs:raise()
  return vals, src
end

local function basename(p) return (p:match("([^/]+)$") or p):gsub("%.lua$", "") end

-- Expands an experiment file. opts: scale (default "paper"), seeds (number or nil), overrides (list of
-- {key, value, text}), data_root, loader_threads, backend, world (data-parallel processes). Returns the experiment table described in lua_exp.h.
local function expand(path, opts)
  opts = opts or {}
  local errs = new_errors()
  local root = load_file(path)
  local chain = flatten(root, "experiment", nil, path, errs)
  -- A library file (methods.lua, scales.lua) fails with one "unknown key" per entry, which hides the real mistake:
  -- it was never meant to be checked on its own. Say so first, and how to find the experiments that use it.
  local keys, known, values = sorted_keys(root), 0, 0
  for _, k in ipairs(keys) do
    if type(k) == "string" and (RUNKEY[k] or CONTEXT.experiment[k]) then known = known + 1 end
    if type(root[k]) == "table" or type(root[k]) == "function" then values = values + 1 end
  end
  if #keys > 0 and known == 0 and values == #keys then
    local name = path:match("([^/]+)$") or path
    errs:add(path, nil, "not an experiment: none of its top-level keys (" .. #keys .. ") is an experiment key. " ..
             "If it is a library for include(), as methods.lua and scales.lua are, check an experiment that " ..
             "includes it instead: grep -l 'include(\"" .. name .. "\")' " .. dirname(path) .. "/*.lua")
  end
  local exp = { file = path, scales = {} }
  for _, t in ipairs(chain) do
    for _, k in ipairs({ "name", "title", "notes", "seeds", "sweep", "report" }) do
      if t[k] ~= nil then exp[k] = t[k] end
    end
    if t.scales ~= nil then
      for _, sn in ipairs(sorted_keys(t.scales)) do
        local sv = t.scales[sn]
        if type(sn) ~= "string" or type(sv) ~= "table" then
          errs:add(where(t.scales, sn), "scales." .. tostring(sn), "expected name = {overlay table}, got " .. show(sv))
        elseif sn == "paper" then
          errs:add(where(t.scales, sn), "scales.paper", "the paper scale is the file itself; it takes no overlay")
        else
          exp.scales[sn] = exp.scales[sn] or {}
          table.insert(exp.scales[sn], sv)
        end
      end
    end
  end
  -- every scale and every sweep value is checked whichever scale runs, so that `rsa check` reports them all
  for sn, list in pairs(exp.scales) do
    for _, st in ipairs(list) do
      for _, t in ipairs(flatten(st, "scale", "scales." .. sn, nil, errs)) do
        if type(t.sweep) == "table" then
          for _, a in ipairs(axes_of(t.sweep, "scales." .. sn .. ".sweep", errs)) do
            for i = 1, #a.values do axis_value(a, i, "scales." .. sn .. ".sweep", errs) end
          end
        end
      end
    end
  end
  if type(exp.sweep) == "table" then
    for _, a in ipairs(axes_of(exp.sweep, "sweep", errs)) do
      for i = 1, #a.values do axis_value(a, i, "sweep", errs) end
    end
  end
  errs:raise()
  exp.name = exp.name or basename(path)
  local scale = opts.scale or "paper"
  exp.scale = scale
  local scale_chain = {}
  if scale ~= "paper" then
    local list = exp.scales[scale]
    if not list then
      local names = { "paper" }
      for k in pairs(exp.scales) do names[#names + 1] = k end
      table.sort(names)
      fail(path .. ": no scale '" .. scale .. "'" .. suggest(scale, names) .. " (this experiment has: " ..
           table.concat(names, ", ") .. ")")
    end
    for _, st in ipairs(list) do
      for _, t in ipairs(flatten(st, "scale", "scales." .. scale, nil, errs)) do scale_chain[#scale_chain + 1] = t end
    end
    errs:raise()
  end
  for _, t in ipairs(scale_chain) do
    if t.notes then exp.scale_notes = t.notes end
  end

  -- axes: the file's sweep, then each scale layer's sweep replaces axes of the same name or adds new ones
  local axes = exp.sweep and axes_of(exp.sweep, "sweep", errs) or {}
  local replaced = {}
  for _, t in ipairs(scale_chain) do
    if t.sweep then
      for _, a in ipairs(axes_of(t.sweep, "scales." .. scale .. ".sweep", errs)) do
        local found = false
        for i, b in ipairs(axes) do
          if b.name == a.name then axes[i], found = a, true end
        end
        if not found then axes[#axes + 1] = a end
        replaced[a.name] = true
      end
    end
  end
  errs:raise()
  local values = {}
  for ai, a in ipairs(axes) do
    values[ai] = {}
    for i = 1, #a.values do values[ai][i] = axis_value(a, i, "sweep", errs) end
  end
  errs:raise()
  exp.axes = {}
  for ai, a in ipairs(axes) do
    local labels = {}
    for i, v in ipairs(values[ai]) do labels[i] = v.label end
    exp.axes[ai] = { name = a.name, labels = labels, replaced = replaced[a.name] or false }
  end

  -- seeds
  local seed_axis
  for ai, a in ipairs(axes) do if a.name == "seed" then seed_axis = ai end end

  -- the cartesian product (first axis outermost)
  local runs = {}
  local idx = {}
  for ai = 1, #axes do idx[ai] = 1 end
  local overrides = opts.overrides or {}
  local function one_combo()
    local picked = {}
    for ai = 1, #axes do picked[ai] = values[ai][idx[ai]] end
    local seeds = exp.seeds or 1
    for ai = 1, #axes do if picked[ai].overlay and picked[ai].overlay.seeds then seeds = picked[ai].overlay.seeds end end
    for _, t in ipairs(scale_chain) do if t.seeds then seeds = t.seeds end end
    if opts.seeds then seeds = opts.seeds end
    local seed_list = {}
    if seed_axis then
      if opts.seeds then
        for s = 0, opts.seeds - 1 do seed_list[#seed_list + 1] = s end
      else
        seed_list = { false } -- the axis itself sets the seed
      end
    else
      for s = 0, seeds - 1 do seed_list[#seed_list + 1] = s end
    end
    for _, seed in ipairs(seed_list) do
      local layers = {}
      -- bases: the file's chain without the file itself, then overlay bases
      for i = 1, #chain - 1 do layers[#layers + 1] = { tbl = chain[i] } end
      local overlay_chains = {}
      for ai = 1, #axes do
        local p = picked[ai]
        if p.overlay then
          local oc = flatten(p.overlay, "overlay", "sweep." .. axes[ai].name, nil, errs)
          overlay_chains[ai] = oc
          for i = 1, #oc - 1 do layers[#layers + 1] = { tbl = oc[i] } end
        end
      end
      layers[#layers + 1] = { tbl = chain[#chain] }
      for _, t in ipairs(scale_chain) do layers[#layers + 1] = { tbl = t } end
      for ai = 1, #axes do
        local p = picked[ai]
        if p.overlay then
          layers[#layers + 1] = { tbl = p.overlay }
        elseif not (seed_axis == ai and seed) then
          layers[#layers + 1] = { tbl = { [p.key] = p.value }, loc = p.loc }
        end
      end
      for _, o in ipairs(overrides) do layers[#layers + 1] = { tbl = { [o.key] = o.value }, loc = "command line" } end
      local cli = {}
      if opts.data_root then cli.data_root = opts.data_root end
      if opts.loader_threads then cli.loader_threads = opts.loader_threads end
      if opts.backend then cli.backend = opts.backend end
      layers[#layers + 1] = { tbl = cli, loc = "command line" }
      if seed then layers[#layers + 1] = { tbl = { seed = seed }, loc = "seed axis" } end
      errs:raise()
      local vals, src = resolve(layers, errs)
      local labels, paper = {}, {}
      for ai = 1, #axes do
        labels[#labels + 1] = { axis = axes[ai].name, label = picked[ai].label }
        local p = picked[ai]
        if p.overlay then
          for _, t in ipairs(overlay_chains[ai]) do
            if type(t.paper) == "table" then for k, v in pairs(t.paper) do paper[k] = v end end
          end
        end
      end
      if not seed_axis then labels[#labels + 1] = { axis = "seed", label = tostring(vals.seed) } end
      local ident, other = canonical(vals, opts.world)
      runs[#runs + 1] = { vals = vals, src = src, labels = labels, paper_fields = paper, canonical = ident,
                          settings = other }
    end
  end
  if #axes == 0 then
    one_combo()
  else
    while true do
      one_combo()
      local ai = #axes
      while ai >= 1 do
        idx[ai] = idx[ai] + 1
        if idx[ai] <= #values[ai] then break end
        idx[ai] = 1
        ai = ai - 1
      end
      if ai < 1 then break end
    end
  end
  exp.runs = runs
  return exp
end

---------------------------------------------------------------------------------------------------------------------
-- report layout

local METHOD_PAPER = { rsa = "RSA", byol = "BYOL", simclr = "SimCLR", mocov2 = "MoCo v2", simsiam = "SimSiam" }
local DATASET_LABEL = { cifar10 = "CIFAR-10", cifar100 = "CIFAR-100", stl10 = "STL-10", tinyimagenet = "Tiny ImageNet",
                        imagenet100 = "ImageNet-100", imagenet = "ImageNet-1K", fashionmnist = "Fashion-MNIST" }
local DATASET_PAPER = { imagenet = "imagenet1k" }

local function label_of(run, axis)
  for _, l in ipairs(run.labels) do if l.axis == axis then return l.label end end
  return nil
end

-- Row and column labels of a run under the report spec.
local function cell_of(run, report)
  local row = report.rows and label_of(run, report.rows) or METHOD_PAPER[run.vals.method]
  local cols = {}
  for _, a in ipairs(report.cols or { "dataset" }) do
    local l = label_of(run, a)
    if l == nil and a == "dataset" then l = DATASET_LABEL[run.vals.dataset] end
    if l == nil and run.vals[a] ~= nil then l = tostring(run.vals[a]) end
    cols[#cols + 1] = l or "?"
  end
  return row or "?", table.concat(cols, ", ")
end

local function paper_identity(run, report)
  local p = {
    table = report.table,
    method = METHOD_PAPER[run.vals.method],
    variant = "",
    dataset = DATASET_PAPER[run.vals.dataset] or run.vals.dataset,
    epochs = run.vals.epochs,
  }
  for k, v in pairs(run.paper_fields) do p[k] = v end
  return p
end

---------------------------------------------------------------------------------------------------------------------
-- the entry points used by C

local last -- the last expansion (for M.sample)

-- Expands `path` at opts.scale and, for the layout, at the paper scale. Returns the experiment table:
-- {name, title, notes, scale, scale_notes, file, report = {...}, runs = {...}, layout = {rows, cols, cells}}
function M.expand(path, opts)
  opts = opts or {}
  local exp = expand(path, opts)
  local report = {}
  for k, v in pairs(exp.report or {}) do report[k] = v end
  report.kind = report.kind or "table"
  report.metric = report.metric or "linear_top1"
  if report.rows == nil then
    for _, a in ipairs(exp.axes) do if a.name ~= "seed" and a.name ~= "dataset" then report.rows = a.name break end end
  end
  -- whether the paper reports numbers for this experiment: every figure does, a table when it names one
  report.has_paper = report.kind ~= "table" or report.table ~= nil
  exp.report = report
  local paper = exp
  if exp.scale ~= "paper" then
    local popts = { scale = "paper", overrides = opts.overrides, backend = opts.backend, world = opts.world }
    paper = expand(path, popts)
  end
  local layout = { rows = {}, cols = {}, cells = {} }
  local seen_row, seen_col, seen_cell = {}, {}, {}
  local function add_row(label, p)
    if not seen_row[label] then
      seen_row[label] = true
      layout.rows[#layout.rows + 1] = { label = label, method = p and p.method or "", variant = p and p.variant or "" }
    end
  end
  local function add_col(label, p, standin)
    if not seen_col[label] then
      seen_col[label] = true
      layout.cols[#layout.cols + 1] = { label = label, dataset = p and p.dataset or "", epochs = p and p.epochs or 0,
                                        standin = standin }
    end
  end
  -- a table with no paper numbers (no report.table) shows, at a reduced scale, only the columns it ran
  local paper_cols = exp.scale == "paper" or report.has_paper
  for _, r in ipairs(paper.runs) do
    local row, col = cell_of(r, report)
    local p = paper_identity(r, report)
    add_row(row, p)
    if paper_cols then add_col(col, p, false) end
    local key = row .. "\0" .. col
    if paper_cols and not seen_cell[key] then
      seen_cell[key] = true
      layout.cells[#layout.cells + 1] = { row = row, col = col, table = report.table or "", method = p.method,
                                          variant = p.variant, dataset = p.dataset, epochs = p.epochs }
    end
  end
  for _, r in ipairs(exp.runs) do
    local row, col = cell_of(r, report)
    if exp.scale ~= "paper" then col = col .. " [" .. exp.scale .. "]" end
    r.row, r.col = row, col
    r.comparable = exp.scale == "paper"
    add_row(row, paper_identity(r, report))
    add_col(col, exp.scale == "paper" and paper_identity(r, report) or nil, exp.scale ~= "paper")
    local parts = {}
    for _, l in ipairs(r.labels) do parts[#parts + 1] = l.axis .. "=" .. l.label end
    r.label_text = table.concat(parts, " ")
  end
  exp.layout = layout
  last = exp
  return exp
end

-- Samples the schedule of run i ("beta_schedule" or "lr_schedule") into a list of K numbers.
-- beta: entry k (1..K) is beta at p = k/K; lr: entry i (1..K) is the lr of step i at p = (i-1)/K.
function M.sample(i, key, K, steps_per_epoch, base_lr)
  local run = last and last.runs[i]
  if not run then error("no run " .. tostring(i)) end
  local f = run.vals[key]
  if type(f) ~= "function" then error(key .. " of run " .. i .. " is not a function") end
  local out = {}
  local loc = fn_where(f)
  for k = 1, K do
    local p = key == "beta_schedule" and k / K or (k - 1) / K
    local s = { step = k, steps = K, epoch = (k - 1) // steps_per_epoch, steps_per_epoch = steps_per_epoch,
                beta_base = run.vals.beta_base, base_lr = base_lr }
    local ok, y = pcall(f, p, s)
    if not ok then fail(loc .. ": " .. key .. " failed at step " .. k .. ": " .. tostring(y)) end
    if type(y) ~= "number" or y ~= y then fail(loc .. ": " .. key .. " returned " .. show(y) .. " at step " .. k) end
    out[k] = y
  end
  return out
end

-- Parses a command-line override "key=value" (value as a Lua expression, else a string).
function M.parse_override(text)
  local key, value = text:match("^%s*([%w_]+)%s*=%s*(.-)%s*$")
  if not key then fail("--set " .. text .. ": expected key=value") end
  if not RUNKEY[key] then
    local names = {}
    for _, e in ipairs(S.run) do names[#names + 1] = e.key end
    fail("--set " .. text .. ": unknown key '" .. key .. "'" .. suggest(key, names))
  end
  local chunk = load("return " .. value, "=--set", "t", {})
  local v
  if chunk then
    local ok, x = pcall(chunk)
    if ok then v = x end
  end
  if v == nil then v = value end
  local errs = new_errors()
  local x = check_value(RUNKEY[key], v, "command line", "--set " .. key, errs)
  errs:raise()
  return { key = key, value = x, text = text }
end

-- The text of `rsa help config`.
function M.help()
  local out = {}
  local function p(s) out[#out + 1] = s end
  p("Experiment files return plain Lua tables. Run keys (every run has all of them; defaults below):")
  local group
  local function fmt_default(e)
    if e.default_doc then return e.default_doc end
    if e.default == nil then return "-" end
    return ser(e.default)
  end
  for _, e in ipairs(S.run) do
    if e.group ~= group then
      group = e.group
      p("")
      p("  [" .. group .. "]")
    end
    p(string.format("  %-18s %-9s default %s%s", e.key, e.type, fmt_default(e), e.hash == false and
      "   (not part of the run id)" or e.hash == "unless_default" and "   (part of the run id when not the default)"
      or ""))
    if e.allowed then p(string.format("  %-18s           allowed: %s", "", table.concat(e.allowed, ", "))) end
    if e.min or e.max then
      p(string.format("  %-18s           range: %s", "", (e.min and (">= " .. e.min) or "") ..
        (e.min and e.max and ", " or "") .. (e.max and ("<= " .. e.max) or "") ..
        (e.words and (", or " .. table.concat(e.words, ", ")) or "")))
    end
    p(string.format("  %-18s           %s", "", e.doc))
    if e.fields then
      for _, f in ipairs(e.fields) do
        p(string.format("  %-18s  .%-8s %s, default %s: %s", "", f.key, f.type .. (f.allowed and
          (" (" .. table.concat(f.allowed, "|") .. ")") or ""), ser(f.default), f.doc))
      end
      if e.presets then
        for _, n in ipairs(sorted_keys(e.presets)) do
          p(string.format("  %-18s  preset %s = %s", "", n, ser(e.presets[n])))
        end
      end
    end
  end
  p("")
  p("Structure keys (not part of the run id):")
  for _, e in ipairs(S.structure) do
    p(string.format("  %-18s %s", e.key, e.doc))
    if e.fields then
      for _, f in ipairs(e.fields) do
        p(string.format("  %-18s  .%-8s %s", "", f.key, f.doc .. (f.allowed and (" (" ..
          table.concat(f.allowed, ", ") .. ")") or "")))
      end
    end
  end
  p("")
  p("Scales:")
  for _, s in ipairs(S.scales) do p(string.format("  %-8s %s", s, S.scale_doc[s])) end
  p("")
  p("Helpers available in experiment files: include(file), merge(a, b, ...), cosine(from, to), linear(from, to),")
  p("constant(v), warmup_cosine(peak, warm_fraction, final): schedule functions of progress p in [0, 1].")
  p("Precedence, lowest first: schema defaults < bases (extends) < the file < the scale < sweep values < --set;")
  p("a scale that must change a swept key replaces that axis with its own sweep.")
  return table.concat(out, "\n")
end

-- For tests: forget loaded files (a file edited on disk is read again).
function M.reset()
  for k in pairs(cache) do cache[k] = nil end
  for k in pairs(files) do files[k] = nil end
end

M.schema = S
M.distance = distance
M.where = where
return M
