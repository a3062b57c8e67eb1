-- Shared by the headless Neovim scripts: load the plugin as a user does, open the prompt, wait
-- for the server, and turn any failure into `cquit 1` with a message on stderr.
local M = {}

vim.opt.runtimepath:prepend(os.getenv("PROMPT_LSP_NVIM_PLUGIN"))

function M.fail(msg)
  io.stderr:write("FAIL: " .. msg .. "\n")
  vim.cmd("cquit 1")
end

function M.note(msg)
  io.stderr:write(msg .. "\n")
end

--- setup() the plugin with `options`, open $PROMPT_FILE and return its buffer.
function M.open(options)
  local python = os.getenv("PROMPT_LSP_PYTHON") or "python3"
  require("prompt_lsp").setup(vim.tbl_extend("force", { cmd = { python, "-m", "prompt_lsp", "serve" } }, options or {}))
  vim.cmd("edit " .. vim.fn.fnameescape(os.getenv("PROMPT_FILE")))
  return vim.api.nvim_get_current_buf()
end

--- Wait until a client with `capability` is attached (requests sent earlier are lost in 0.7).
function M.wait_attached(buf, capability)
  local attached = vim.wait(30000, function()
    for _, client in pairs(vim.lsp.buf_get_clients(buf)) do
      if client.server_capabilities and client.server_capabilities[capability] then
        return true
      end
    end
    return false
  end, 100)
  if not attached then
    M.fail("the server did not attach")
  end
end

--- Run `body`, then quit: 0 when it passed.
function M.run(body)
  local ok, err = pcall(body)
  if not ok then
    M.fail(tostring(err))
  end
  vim.cmd("qall!")
end

--- The titles of `buf`'s code lenses that carry a command.
function M.lens_titles(buf)
  local out = {}
  for _, lens in ipairs(vim.lsp.codelens.get(buf) or {}) do
    if lens.command then
      table.insert(out, lens.command.title)
    end
  end
  return out
end

--- Wait up to `ms` for a lens of `buf` whose title matches `pattern`, and return that title.
--- With `refresh`, ask for the lenses at every look; without, the plugin must keep them fresh.
function M.wait_for_lens(buf, pattern, ms, refresh)
  local found
  local done = vim.wait(ms, function()
    if refresh then
      vim.lsp.codelens.refresh()
    end
    for _, title in ipairs(M.lens_titles(buf)) do
      if title:find(pattern) then
        found = title
        return true
      end
    end
    return false
  end, refresh and 500 or 100)
  if not done then
    M.fail("no lens matching " .. pattern .. "; lenses: " .. vim.inspect(M.lens_titles(buf)))
  end
  return found
end

return M
