-- Headless Neovim 0.7+: what the plugin itself provides, without any manual call of the LSP API.
-- 1. <C-x><C-o> completes (the plugin sets 'omnifunc'; 0.7 does not), inserting `topic }}`;
-- 2. an examples file changed on disk (not saved from Neovim, prompt not saved) is re-read;
-- 3. :checkhealth prompt_lsp reports the server.
-- Steps run from timers so that typed keys are processed by the main loop as a user's are.
local h = dofile(os.getenv("PROMPT_LSP_NVIM_TESTS") .. "/harness.lua")
local fail, note = h.fail, h.note
vim.opt.swapfile = false

local buf = h.open({ debounce_text_changes = 0 })
h.wait_attached(buf, "completionProvider")

local function until_true(predicate, ms, what, after)
  local start = vim.loop.now()
  local function poll()
    local ok, value = pcall(predicate)
    if not ok then
      return fail(what .. ": " .. tostring(value))
    end
    if value then
      return after(value)
    end
    if vim.loop.now() - start > ms then
      return fail("timed out waiting for " .. what)
    end
    vim.defer_fn(poll, 50)
  end
  vim.defer_fn(poll, 50)
end

local function missing_variable_diagnostics()
  local found = {}
  for _, d in ipairs(vim.diagnostic.get(buf)) do
    if d.code == "example-missing-variable" then
      table.insert(found, d)
    end
  end
  return found
end

local function checkhealth()
  vim.cmd("checkhealth prompt_lsp")
  local report = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), "\n")
  if not report:find("the server runs: prompt%-lsp") then
    fail("checkhealth does not say the server runs:\n" .. report)
  end
  note("checkhealth ok")
  vim.cmd("qall!")
end

local function examples_watched()
  until_true(function()
    return #missing_variable_diagnostics() > 0
  end, 20000, "the example-missing-variable diagnostic", function()
    -- another program fixes the examples file; Neovim does not save anything
    local file = assert(io.open(os.getenv("EXAMPLES_FILE"), "w"))
    file:write('{"input": {"topic": "autumn rain"}, "expected": "rain on the roof"}\n')
    file:close()
    until_true(function()
      return #missing_variable_diagnostics() == 0
    end, 20000, "the diagnostic to go after the examples file changed on disk", function()
      if vim.bo[buf].modified then
        fail("the prompt buffer was modified")
      end
      note("examples watch ok")
      checkhealth()
    end)
  end)
end

if vim.bo[buf].omnifunc ~= "v:lua.vim.lsp.omnifunc" then
  fail("omnifunc is '" .. vim.bo[buf].omnifunc .. "'")
end
local last = vim.api.nvim_buf_line_count(buf)
vim.api.nvim_win_set_cursor(0, { last, 0 })
vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes("oAbout {{ <C-x><C-o>", true, false, true), "t", false)
until_true(function()
  local items = vim.fn.complete_info({ "items" }).items
  return #items > 0 and items
end, 15000, "omnifunc completion items", function(items)
  local words = vim.tbl_map(function(i)
    return i.word
  end, items)
  note("omnifunc items: " .. table.concat(words, ", "))
  vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes("<Esc>", true, false, true), "t", false)
  until_true(function()
    return vim.fn.mode() == "n"
  end, 5000, "normal mode", function()
    local line = vim.api.nvim_buf_get_lines(buf, last, last + 1, false)[1]
    if line ~= "About {{ topic }}" then
      fail("the accepted completion reads '" .. tostring(line) .. "'")
    end
    note("omnifunc ok")
    vim.cmd("silent undo")
    vim.cmd("silent write")
    examples_watched()
  end)
end)
