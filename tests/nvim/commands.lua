-- Headless Neovim: the plugin's :Prompt* commands reach the server. :PromptRender writes the
-- rendered prompt under .prompt-lsp/out/; :PromptCompare with no history says so; :PromptCancel
-- with nothing running says so. Exit code 0 = pass.
local h = dofile(os.getenv("PROMPT_LSP_NVIM_TESTS") .. "/harness.lua")
local fail, note = h.fail, h.note

local messages = {}
h.run(function()
  vim.lsp.handlers["window/showMessage"] = function(_, result)
    table.insert(messages, result.message)
  end
  local buf = h.open()
  h.wait_attached(buf, "executeCommandProvider")

  vim.cmd("PromptRender")
  local rendered = os.getenv("RENDERED_FILE")
  if not vim.wait(20000, function()
    return vim.fn.filereadable(rendered) == 1
  end, 100) then
    fail(":PromptRender wrote nothing at " .. rendered)
  end
  note("render ok")

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
  note("compare ok")
  vim.cmd("PromptCancel")
  if not said("No evaluation of this prompt is running") then
    fail(":PromptCancel said nothing: " .. vim.inspect(messages))
  end
  note("cancel ok")
end)
