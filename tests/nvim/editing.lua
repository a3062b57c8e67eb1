-- Headless Neovim end-to-end: the plugin starts the server; diagnostics, completion, hover and a
-- quick fix are read back as a user would see them. Exit code 0 = pass; messages on stderr.
local h = dofile(os.getenv("PROMPT_LSP_NVIM_TESTS") .. "/harness.lua")
local fail, note = h.fail, h.note

h.run(function()
  local buf = h.open({ debounce_text_changes = 0 })
  if vim.bo[buf].filetype ~= "prompt" then
    fail("filetype is " .. vim.bo[buf].filetype)
  end

  -- 1. the seeded error is reported
  local found = vim.wait(20000, function()
    for _, d in ipairs(vim.diagnostic.get(buf)) do
      if d.code == "undefined-variable" then
        return true
      end
    end
    return false
  end, 100)
  if not found then
    fail("no undefined-variable diagnostic; got " .. vim.inspect(vim.diagnostic.get(buf)))
  end
  note("diagnostics ok")

  local function request(method, params)
    local result = vim.lsp.buf_request_sync(buf, method, params, 10000)
    if not result then
      fail(method .. " timed out")
    end
    for _, res in pairs(result) do
      if res.error then
        fail(method .. " error " .. vim.inspect(res.error))
      end
      return res.result
    end
  end
  local function position(pattern)
    for i, line in ipairs(vim.api.nvim_buf_get_lines(buf, 0, -1, false)) do
      local col = line:find(pattern, 1, true)
      if col then
        return { line = i - 1, character = col - 1 }
      end
    end
    fail("pattern not found: " .. pattern)
  end
  local uri = vim.uri_from_bufnr(buf)

  -- 2. completion offers a declared variable and a special token
  local pos = position("{{ topic }}")
  local items = request("textDocument/completion", {
    textDocument = { uri = uri },
    position = { line = pos.line, character = pos.character + 3 },
  })
  items = items and (items.items or items) or {}
  local labels = {}
  for _, item in ipairs(items) do
    labels[item.label] = true
  end
  if not labels["topic"] then
    fail("completion lacks the declared variable: " .. vim.inspect(vim.tbl_keys(labels)))
  end
  local tok = position("<start_of_turn>")
  local token_items = request("textDocument/completion", {
    textDocument = { uri = uri },
    position = { line = tok.line, character = tok.character + 1 },
  })
  token_items = token_items and (token_items.items or token_items) or {}
  local has_token = false
  for _, item in ipairs(token_items) do
    if item.label == "<start_of_turn>" then
      has_token = true
    end
  end
  if not has_token then
    fail("completion after '<' lacks <start_of_turn>")
  end
  note("completion ok")

  -- 3. hover shows the variable's description
  local hover = request("textDocument/hover", {
    textDocument = { uri = uri },
    position = { line = pos.line, character = pos.character + 4 },
  })
  local text = hover and hover.contents and (hover.contents.value or hover.contents) or ""
  if type(text) ~= "string" or not text:find("what the haiku is about", 1, true) then
    fail("hover lacks the description: " .. vim.inspect(hover))
  end
  note("hover ok")

  -- 4. the quick fix applies and its diagnostic goes away
  local diag
  for _, d in ipairs(vim.diagnostic.get(buf)) do
    if d.code == "undefined-variable" then
      diag = d
    end
  end
  local actions = request("textDocument/codeAction", {
    textDocument = { uri = uri },
    range = {
      start = { line = diag.lnum, character = diag.col },
      ["end"] = { line = diag.end_lnum, character = diag.end_col },
    },
    context = { diagnostics = {} },
  })
  local applied = false
  for _, action in ipairs(actions or {}) do
    if action.title:find("Declare", 1, true) and action.edit then
      vim.lsp.util.apply_workspace_edit(action.edit, "utf-16")
      applied = true
      break
    end
  end
  if not applied then
    fail("no 'Declare' quick fix: " .. vim.inspect(actions))
  end
  local cleared = vim.wait(20000, function()
    for _, d in ipairs(vim.diagnostic.get(buf)) do
      if d.code == "undefined-variable" then
        return false
      end
    end
    return true
  end, 100)
  if not cleared then
    fail("the diagnostic stayed after the quick fix")
  end
  note("quick fix ok")
end)
