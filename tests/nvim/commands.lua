-- Headless Neovim: the plugin's :Prompt* commands reach the server. :PromptRender writes the
-- rendered prompt under .prompt-lsp/out/; :PromptCompare with no history says so; :PromptCancel
-- with nothing running says so. Exit code 0 = pass.
local plugin_dir = os.getenv("PROMPT_LSP_NVIM_PLUGIN")
local python = os.getenv("PROMPT_LSP_PYTHON") or "python3"
vim.opt.runtimepath:prepend(plugin_dir)

local function fail(msg)
  io.stderr:write("FAIL: " .. msg .. "\n")
  vim.cmd("cquit 1")
end

local messages = {}
local ok, err = pcall(function()
  require("prompt_lsp").setup({ cmd = { python, "-m", "prompt_lsp", "serve" } })
  vim.lsp.handlers["window/showMessage"] = function(_, result)
    table.insert(messages, result.message)
  end
  vim.cmd("edit " .. vim.fn.fnameescape(os.getenv("PROMPT_FILE")))
  local buf = vim.api.nvim_get_current_buf()
  local attached = vim.wait(30000, function()
    for _, client in pairs(vim.lsp.buf_get_clients(buf)) do
      if client.server_capabilities and client.server_capabilities.executeCommandProvider then
        return true
      end
    end
    return false
  end, 100)
  if not attached then
    fail("the server did not attach")
  end

  vim.cmd("PromptRender")
  local rendered = os.getenv("RENDERED_FILE")
  if not vim.wait(20000, function()
    return vim.fn.filereadable(rendered) == 1
  end, 100) then
    fail(":PromptRender wrote nothing at " .. rendered)
  end
  io.stderr:write("render ok\n")

  local function said(pattern)
    return vim.wait(20000, function()
      for _, message in ipairs(messages) do
        if message:find(pattern, 1, true) then
          return true
        end
      end
      return false
    end, 100)
  end
  vim.cmd("PromptCompare")
  if not said("Nothing to compare yet") then
    fail(":PromptCompare said nothing: " .. vim.inspect(messages))
  end
  io.stderr:write("compare ok\n")
  vim.cmd("PromptCancel")
  if not said("No evaluation of this prompt is running") then
    fail(":PromptCancel said nothing: " .. vim.inspect(messages))
  end
  io.stderr:write("cancel ok\n")
end)
if not ok then
  fail(tostring(err))
end
vim.cmd("qall!")
