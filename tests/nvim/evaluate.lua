-- Headless Neovim: run Evaluate through the code lens (on the embedded local model) and read the
-- score lens that replaces it. Exit code 0 = pass.
local h = dofile(os.getenv("PROMPT_LSP_NVIM_TESTS") .. "/harness.lua")
local fail, note = h.fail, h.note

h.run(function()
  local buf = h.open()

  h.wait_attached(buf, "codeLensProvider")
  local function wait_for_lens(pattern, ms)
    return h.wait_for_lens(buf, pattern, ms, true)
  end

  local evaluate = wait_for_lens("^▶ Evaluate %(2 examples", 30000)
  note("lens: " .. evaluate)
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
  note("score: " .. score)
end)
