-- Headless Neovim: run Evaluate through the code lens (on the embedded local model) and read the
-- score lens that replaces it. Exit code 0 = pass.
local plugin_dir = os.getenv("PROMPT_LSP_NVIM_PLUGIN")
local python = os.getenv("PROMPT_LSP_PYTHON") or "python3"
vim.opt.runtimepath:prepend(plugin_dir)

local function fail(msg)
  io.stderr:write("FAIL: " .. msg .. "\n")
  vim.cmd("cquit 1")
end

local ok, err = pcall(function()
  require("prompt_lsp").setup({ cmd = { python, "-m", "prompt_lsp", "serve" } })
  vim.cmd("edit " .. vim.fn.fnameescape(os.getenv("PROMPT_FILE")))
  local buf = vim.api.nvim_get_current_buf()

  local function titles()
    local out = {}
    for _, lens in ipairs(vim.lsp.codelens.get(buf) or {}) do
      if lens.command then
        table.insert(out, lens.command.title)
      end
    end
    return out
  end
  -- a refresh sent before the server is up is lost for good in Neovim 0.7: wait for it
  local attached = vim.wait(30000, function()
    for _, client in pairs(vim.lsp.buf_get_clients(buf)) do
      if client.server_capabilities and client.server_capabilities.codeLensProvider then
        return true
      end
    end
    return false
  end, 100)
  if not attached then
    fail("the server did not attach")
  end
  local function wait_for_lens(pattern, ms)
    local found
    local done = vim.wait(ms, function()
      vim.lsp.codelens.refresh()
      for _, title in ipairs(titles()) do
        if title:find(pattern) then
          found = title
          return true
        end
      end
      return false
    end, 500)
    if not done then
      fail("no lens matching " .. pattern .. "; lenses: " .. vim.inspect(titles()))
    end
    return found
  end

  local evaluate = wait_for_lens("^▶ Evaluate %(2 examples", 30000)
  io.stderr:write("lens: " .. evaluate .. "\n")
  -- pick the Evaluate lens as a user would from the lens menu of line 1
  vim.ui.select = function(items, opts, on_choice)
    for i, item in ipairs(items) do
      local text = opts.format_item and opts.format_item(item) or tostring(item)
      if text:find("Evaluate", 1, true) then
        return on_choice(item, i)
      end
    end
    fail("the lens menu has no Evaluate: " .. vim.inspect(items))
  end
  vim.api.nvim_win_set_cursor(0, { 1, 0 })
  vim.lsp.codelens.run()
  local score = wait_for_lens("^rougeL %d%.%d%d%d", 240000)
  if not score:find("2/2 ok", 1, true) then
    fail("the score lens does not count 2/2 ok: " .. score)
  end
  io.stderr:write("score: " .. score .. "\n")
end)
if not ok then
  fail(tostring(err))
end
vim.cmd("qall!")
