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

return M
