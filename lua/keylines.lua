-- Where each key of a Lua file is written: a small tokenizer that records, for every `name =` (and `["name"] =`)
-- inside table constructors, the line and the path of keys from the enclosing constructors (positional items count
-- as 1, 2, ...). Table constructors do not keep line numbers at run time, so validation messages look the key's
-- path up here: exact path first, then the recorded path sharing the longest suffix with it (a table built in a local
-- and placed elsewhere), then the key's name alone, then the parent's path.
local M = {}

local KEYWORDS = {}
for w in ([[and break do else elseif end false for function goto if in local nil not or repeat return then true
           until while]]):gmatch("%a+") do KEYWORDS[w] = true end

local function count_nl(s) return select(2, s:gsub("\n", "")) end

-- Returns the list of tokens {t = kind, v = text, line = n}: kind is "name", "kw", "str", "num" or the punctuation.
local function tokenize(src)
  local toks, i, n, line = {}, 1, #src, 1
  if src:sub(1, 1) == "#" then i = (src:find("\n", 1, true) or n + 1) end -- shebang
  while i <= n do
    local c = src:sub(i, i)
    if c == "\n" then
      line, i = line + 1, i + 1
    elseif c:match("%s") then
      i = i + 1
    elseif src:sub(i, i + 1) == "--" then
      local eq = src:match("^%[(=*)%[", i + 2)
      if eq then
        local close = "]" .. eq .. "]"
        local e = src:find(close, i + 4 + #eq, true)
        local stop = e and e + #close - 1 or n
        line, i = line + count_nl(src:sub(i, stop)), stop + 1
      else
        i = src:find("\n", i, true) or n + 1
      end
    elseif c == "[" and src:match("^%[=*%[", i) then
      local eq = src:match("^%[(=*)%[", i)
      local close = "]" .. eq .. "]"
      local e = src:find(close, i + 2 + #eq, true)
      local stop = e and e + #close - 1 or n
      local body = src:sub(i + 2 + #eq, (e or n + 1) - 1)
      toks[#toks + 1] = { t = "str", v = body, line = line }
      line, i = line + count_nl(src:sub(i, stop)), stop + 1
    elseif c == '"' or c == "'" then
      local j = i + 1
      while j <= n do
        local d = src:sub(j, j)
        if d == "\\" then
          j = j + 2
        elseif d == c or d == "\n" then
          break
        else
          j = j + 1
        end
      end
      toks[#toks + 1] = { t = "str", v = src:sub(i + 1, j - 1), line = line }
      line, i = line + count_nl(src:sub(i, j)), j + 1
    elseif c:match("[%a_]") then
      local w = src:match("^[%w_]+", i)
      toks[#toks + 1] = { t = KEYWORDS[w] and "kw" or "name", v = w, line = line }
      i = i + #w
    elseif c:match("%d") or (c == "." and src:sub(i + 1, i + 1):match("%d")) then
      local j = i
      while j <= n do
        local d = src:sub(j, j)
        if d:match("[%w%.]") then
          j = j + 1
        elseif (d == "+" or d == "-") and src:sub(j - 1, j - 1):match("[eEpP]") then
          j = j + 1
        else
          break
        end
      end
      toks[#toks + 1] = { t = "num", v = src:sub(i, j - 1), line = line }
      i = j
    else
      local three, two = src:sub(i, i + 2), src:sub(i, i + 1)
      local p
      if three == "..." then
        p = three
      elseif two == "==" or two == "~=" or two == "<=" or two == ">=" or two == ".." or two == "::" or two == "//"
          or two == "<<" or two == ">>" then
        p = two
      else
        p = c
      end
      toks[#toks + 1] = { t = p, v = p, line = line }
      i = i + #p
    end
  end
  return toks
end

-- Scans source text; returns {entries = {{path = {...}, line = n}...}, byname = {name = {lines}}}.
function M.scan(src)
  local toks = tokenize(src)
  local entries, byname = {}, {}
  local stack = {} -- frames: {kind = "{"|"("|"["|"block", key = k, index = 0, at_item = bool, item_key = k}
  local pending -- key for a "{" that directly follows `key =`
  local last_assign -- the last `name =` at statement level: the key of a call's table arguments (x = merge(a, {...}))
  local function top() return stack[#stack] end
  local function in_block()
    for f = 1, #stack do if stack[f].kind == "block" then return true end end
    return false
  end
  local function path_with(k)
    local p = {}
    for f = 1, #stack do
      if stack[f].kind == "{" and stack[f].key ~= nil then p[#p + 1] = stack[f].key end
    end
    p[#p + 1] = k
    return p
  end
  local function record(k, line)
    local name = tostring(k)
    byname[name] = byname[name] or {}
    table.insert(byname[name], line)
    if not in_block() then entries[#entries + 1] = { path = path_with(k), line = line } end
  end
  local k = 1
  while k <= #toks do
    local tk, nx = toks[k], toks[k + 1]
    local f = top()
    local item_start = f and f.kind == "{" and f.at_item
    if tk.t == "name" and nx and nx.t == "=" then
      record(tk.v, tk.line)
      if f and f.kind == "{" then f.at_item, f.item_key = false, tk.v end
      if not f or f.kind == "block" then last_assign = tk.v end
      pending = tk.v
      k = k + 2
    elseif item_start and tk.t == "[" and toks[k + 1] and toks[k + 1].t == "str" and toks[k + 2]
        and toks[k + 2].t == "]" and toks[k + 3] and toks[k + 3].t == "=" then
      local key = toks[k + 1].v
      record(key, tk.line)
      f.at_item, f.item_key = false, key
      pending = key
      k = k + 4
    else
      if tk.t == "{" then
        local key
        if pending ~= nil and toks[k - 1] and toks[k - 1].t == "=" then
          key = pending
        elseif item_start then
          f.index = f.index + 1
          key = f.index
          f.at_item, f.item_key = false, f.index
          record(f.index, tk.line)
        elseif f and f.kind == "(" then
          key = f.key
        end
        stack[#stack + 1] = { kind = "{", key = key, index = 0, at_item = true }
      else
        if item_start and tk.t ~= "}" then
          f.index = f.index + 1
          f.at_item, f.item_key = false, f.index
          record(f.index, tk.line) -- a positional item: its line, for messages about list elements
        end
        if tk.t == "}" then
          while #stack > 0 and table.remove(stack).kind ~= "{" do end
        elseif tk.t == "(" then
          local key
          if f and f.kind == "{" then key = f.item_key
          elseif f and f.kind == "(" then key = f.key
          else key = last_assign end
          stack[#stack + 1] = { kind = "(", key = key }
        elseif tk.t == ")" then
          while #stack > 0 and table.remove(stack).kind ~= "(" do end
        elseif tk.t == "[" then
          stack[#stack + 1] = { kind = "[" }
        elseif tk.t == "]" then
          while #stack > 0 and table.remove(stack).kind ~= "[" do end
        elseif (tk.t == "," or tk.t == ";") and f and f.kind == "{" then
          f.at_item = true
        elseif tk.t == "kw" and (tk.v == "function" or tk.v == "if" or tk.v == "do" or tk.v == "repeat") then
          stack[#stack + 1] = { kind = "block" }
        elseif tk.t == "kw" and (tk.v == "end" or tk.v == "until") then
          for s = #stack, 1, -1 do
            if stack[s].kind == "block" then
              for _ = #stack, s, -1 do table.remove(stack) end
              break
            end
          end
        end
      end
      pending = nil
      k = k + 1
    end
  end
  return { entries = entries, byname = byname }
end

-- The line of `path` (a list of keys) in a scanned file, or nil.
function M.lookup(info, path)
  if not info or #path == 0 then return nil end
  local best, best_len
  for _, e in ipairs(info.entries) do
    local a, b, len = #e.path, #path, 0
    while a >= 1 and b >= 1 and tostring(e.path[a]) == tostring(path[b]) do a, b, len = a - 1, b - 1, len + 1 end
    if len > 0 and (not best_len or len > best_len) then best, best_len = e, len end
  end
  if best and (best_len == #path or best_len == #best.path or best_len >= 2) then return best.line end
  local last = path[#path]
  if type(last) == "string" then
    local lines = info.byname[last]
    if lines and #lines >= 1 then return lines[1] end
  end
  if best then return best.line end
  local parent = {}
  for i = 1, #path - 1 do parent[i] = path[i] end
  return M.lookup(info, parent)
end

return M
