-- Headless Neovim 0.7+: :PromptEvaluate, then the lens shows the score with no call of
-- vim.lsp.codelens.refresh by the test (the plugin refreshes after its command, on
-- workspace/codeLens/refresh and on the promptLsp/score notification); progress and the score
-- are shown as messages. Exit code 0 = pass.
local h = dofile(os.getenv("PROMPT_LSP_NVIM_TESTS") .. "/harness.lua")
local fail, note = h.fail, h.note
vim.opt.swapfile = false

local shown = {}
local echo = vim.api.nvim_echo
vim.api.nvim_echo = function(chunks, history, opts)
  for _, chunk in ipairs(chunks) do
    table.insert(shown, chunk[1])
  end
  return echo(chunks, history, opts)
end
local notify = vim.notify
vim.notify = function(msg, level, opts)
  table.insert(shown, msg)
  return notify(msg, level, opts)
end

h.run(function()
  local buf = h.open()
  h.wait_attached(buf, "codeLensProvider")
  local function wait_for_lens(pattern, ms) -- no refresh: the plugin keeps the lenses fresh
    return h.wait_for_lens(buf, pattern, ms, false)
  end
  note("before: " .. wait_for_lens("^▶ Evaluate", 30000))
  vim.cmd("PromptEvaluate")
  local score = wait_for_lens("^rougeL %d%.%d%d%d", 240000)
  note("score lens: " .. score)
  vim.wait(2000, function()
    return vim.tbl_contains(vim.tbl_map(function(m)
      return m:find("rougeL", 1, true) ~= nil
    end, shown), true)
  end, 100)
  for _, message in ipairs(shown) do
    note("shown: " .. message)
  end
  local statusline = require("prompt_lsp").score()
  note("statusline: " .. statusline)
end)
