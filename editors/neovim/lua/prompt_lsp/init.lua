-- prompt-lsp for Neovim: filetype, language server, completion (omnifunc, nvim-cmp), code
-- lenses kept fresh, progress and scores shown, the examples file watched, :Prompt* commands.
-- Works on Neovim 0.7 (vim.lsp.start_client) and 0.10+ (vim.lsp.start).
local M = {}

-- Examples files whose changes on disk the server is told about.
local EXAMPLE_SUFFIXES = { "jsonl", "ndjson", "json", "csv", "yaml", "yml" }

M.config = {
  cmd = nil, -- default: { "prompt-lsp", "serve" }, else { "python3", "-m", "prompt_lsp", "serve" }
  settings = { -- the promptLsp section sent to the server
    defaultModel = nil,
    concurrency = nil,
    cache = true,
    debounce = 150,
  },
  codelens = true, -- refresh code lenses on enter, save and after a run
  omnifunc = true, -- set 'omnifunc' so <C-x><C-o> completes (nvim-cmp needs nothing more)
  progress = true, -- echo evaluation progress and scores
  watch_examples = true, -- tell the server when an examples file changes on disk
  root_markers = { ".prompt-lsp", ".git" },
}

local clients = {} -- root dir -> client id (Neovim 0.7 path)
M.scores = {} -- uri -> last score text (promptLsp/score), for a statusline: M.score()
local watchers = {} -- directory -> uv fs_event handle
M.client_ids = {} -- ids of the prompt-lsp clients started by this plugin

local function echo(text, level)
  if not M.config.progress then
    return
  end
  vim.schedule(function()
    if level and level >= vim.log.levels.WARN then
      vim.notify(text, level)
    else
      vim.api.nvim_echo({ { text } }, true, {})
    end
  end)
end

--- Ask the server for fresh lenses in every loaded buffer of `client_id`.
local function refresh_lenses(client_id)
  if not M.config.codelens then
    return
  end
  vim.schedule(function()
    local client = vim.lsp.get_client_by_id(client_id)
    for buf in pairs(client and client.attached_buffers or {}) do
      if vim.api.nvim_buf_is_loaded(buf) then
        vim.api.nvim_buf_call(buf, function()
          pcall(vim.lsp.codelens.refresh)
        end)
      end
    end
  end)
end

function M.default_cmd()
  if vim.fn.executable("prompt-lsp") == 1 then
    return { "prompt-lsp", "serve" }
  end
  local python = vim.fn.executable("python3") == 1 and "python3" or "python"
  return { python, "-m", "prompt_lsp", "serve" }
end

local function root_dir(bufnr)
  local file = vim.api.nvim_buf_get_name(bufnr)
  local dir = vim.fn.fnamemodify(file, ":p:h")
  for _, marker in ipairs(M.config.root_markers) do
    local found = vim.fn.finddir(marker, dir .. ";")
    if found == "" then
      found = vim.fn.findfile(marker, dir .. ";")
    end
    if found ~= "" then
      return vim.fn.fnamemodify(found, ":p:h:h")
    end
  end
  return dir
end

local function settings()
  local s = {}
  for k, v in pairs(M.config.settings) do
    if v ~= nil then
      s[k] = v
    end
  end
  return { promptLsp = s }
end

local function progress_text(value)
  local parts = {}
  for _, part in ipairs({ value.title, value.message }) do
    if part and part ~= "" then
      table.insert(parts, part)
    end
  end
  if value.percentage then
    table.insert(parts, value.percentage .. "%")
  end
  return table.concat(parts, " · ")
end

local function handlers()
  local default_progress = vim.lsp.handlers["$/progress"]
  local titles = {} -- progress token -> title of its begin
  return {
    ["workspace/codeLens/refresh"] = function(_, _, ctx)
      refresh_lenses(ctx.client_id)
      return vim.NIL
    end,
    -- the score after a run: kept for the statusline, echoed, and the lenses refreshed
    ["promptLsp/score"] = function(_, params, ctx)
      if type(params) == "table" and params.uri then
        M.scores[params.uri] = params.text
        echo("prompt-lsp: " .. tostring(params.text))
      end
      refresh_lenses(ctx.client_id)
    end,
    ["$/progress"] = function(err, params, ctx, config)
      if default_progress then
        pcall(default_progress, err, params, ctx, config)
      end
      local value = params and params.value
      if type(value) == "table" then
        if value.kind == "begin" then
          titles[params.token] = value.title
        end
        local shown = vim.tbl_extend("force", value, { title = value.title or titles[params.token] })
        echo("prompt-lsp: " .. progress_text(shown))
        if value.kind == "end" then
          titles[params.token] = nil
          refresh_lenses(ctx.client_id)
        end
      end
    end,
    ["workspace/configuration"] = function(_, params)
      local result = {}
      for _, item in ipairs(params.items or {}) do
        if item.section == "promptLsp" then
          table.insert(result, settings().promptLsp)
        else
          table.insert(result, vim.NIL)
        end
      end
      return result
    end,
  }
end

--- The client's capabilities: Neovim's own, nvim-cmp's when it is installed, and the lens
--- refresh this plugin carries out (Neovim 0.7 does not declare it itself).
local function capabilities()
  local caps = vim.lsp.protocol.make_client_capabilities()
  local ok, cmp_lsp = pcall(require, "cmp_nvim_lsp")
  if ok and cmp_lsp.default_capabilities then
    caps = vim.tbl_deep_extend("force", caps, cmp_lsp.default_capabilities())
  end
  return vim.tbl_deep_extend("force", caps, {
    workspace = { codeLens = { refreshSupport = true } },
    window = { workDoneProgress = true },
  })
end

local function is_examples_file(name)
  for _, suffix in ipairs(EXAMPLE_SUFFIXES) do
    if name:sub(-#suffix - 1) == "." .. suffix then
      return true
    end
  end
  return false
end

local function notify_changed(client_id, path)
  local client = vim.lsp.get_client_by_id(client_id)
  if client then
    client.notify("workspace/didChangeWatchedFiles", {
      changes = { { uri = vim.uri_from_fname(path), type = 2 } },
    })
  end
end

--- Watch the prompt's folder (where its examples file usually is) for changes made outside
--- Neovim; a write from Neovim itself is caught by BufWritePost.
local function watch_folder(client_id, dir)
  if not M.config.watch_examples or watchers[dir] or not vim.loop.new_fs_event then
    return
  end
  local handle = vim.loop.new_fs_event()
  if not handle then
    return
  end
  local pending = {}
  local ok = handle:start(dir, {}, function(err, filename)
    if err or not filename or not is_examples_file(filename) or pending[filename] then
      return
    end
    pending[filename] = true
    vim.defer_fn(function() -- one notification per burst of writes
      pending[filename] = nil
      notify_changed(client_id, dir .. "/" .. filename)
    end, 100)
  end)
  if ok then
    watchers[dir] = handle
  end
end

local function on_attach(client, buf)
  M.client_ids[client.id] = true
  if M.config.omnifunc then
    vim.bo[buf].omnifunc = "v:lua.vim.lsp.omnifunc"
  end
  if M.config.codelens then
    vim.api.nvim_create_autocmd({ "BufEnter", "BufWritePost", "InsertLeave" }, {
      buffer = buf,
      callback = function()
        pcall(vim.lsp.codelens.refresh)
      end,
    })
    pcall(vim.lsp.codelens.refresh)
  end
  watch_folder(client.id, vim.fn.fnamemodify(vim.api.nvim_buf_get_name(buf), ":p:h"))
  if M.config.on_attach then
    M.config.on_attach(client, buf)
  end
end

local function client_config(bufnr)
  local root = root_dir(bufnr)
  local init_options = settings()
  -- what this plugin shows although Neovim does not declare it (see the README's matrix)
  init_options.codeLens = M.config.codelens
  init_options.scoreNotification = true
  return {
    name = "prompt-lsp",
    cmd = M.config.cmd or M.default_cmd(),
    root_dir = root,
    workspace_folders = { { uri = vim.uri_from_fname(root), name = root } },
    init_options = init_options,
    settings = settings(),
    capabilities = capabilities(),
    handlers = handlers(),
    flags = { debounce_text_changes = M.config.debounce_text_changes or 150 },
    on_attach = on_attach,
  }, root
end

--- Start (or reuse) the server for a buffer. Returns the client id.
function M.attach(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local config, root = client_config(bufnr)
  if vim.lsp.start then
    return vim.lsp.start(config, { bufnr = bufnr })
  end
  local id = clients[root]
  if not id or not vim.lsp.get_client_by_id(id) then
    id = vim.lsp.start_client(config)
    clients[root] = id
  end
  if id then
    vim.lsp.buf_attach_client(bufnr, id)
  else
    vim.notify("prompt-lsp: the server could not start; install it with `pip install prompt-lsp`", vim.log.levels.ERROR)
  end
  return id
end

local function execute(command, extra)
  local bufnr = vim.api.nvim_get_current_buf()
  local argument = vim.tbl_extend("force", { uri = vim.uri_from_bufnr(bufnr) }, extra or {})
  vim.lsp.buf_request(bufnr, "workspace/executeCommand", { command = command, arguments = { argument } }, function(err, _, ctx)
    if err then
      vim.notify("prompt-lsp: " .. (err.message or tostring(err)), vim.log.levels.ERROR)
    elseif ctx and ctx.client_id then
      refresh_lenses(ctx.client_id) -- a run starts (Evaluating…) or was cancelled
    end
  end)
end

--- The score of the current buffer's last run, for a statusline (`%{v:lua.require'prompt_lsp'.score()}`).
function M.score()
  return M.scores[vim.uri_from_bufnr(0)] or ""
end

function M.evaluate()
  execute("prompt-lsp.evaluate")
end
function M.cancel()
  execute("prompt-lsp.cancelEvaluation")
end
function M.compare()
  execute("prompt-lsp.compareWithPrevious")
end
function M.render()
  execute("prompt-lsp.showRendered")
end

function M.setup(opts)
  M.config = vim.tbl_deep_extend("force", M.config, opts or {})
  vim.cmd([[
    augroup prompt_lsp_filetype
      autocmd!
      autocmd BufRead,BufNewFile *.prompt,*.prompty setfiletype prompt
    augroup END
  ]])
  vim.api.nvim_create_autocmd("FileType", {
    pattern = "prompt",
    callback = function(args)
      M.attach(args.buf)
    end,
  })
  vim.api.nvim_create_user_command("PromptEvaluate", M.evaluate, { desc = "Evaluate this prompt on its examples" })
  vim.api.nvim_create_user_command("PromptCancel", M.cancel, { desc = "Cancel the running evaluation" })
  vim.api.nvim_create_user_command("PromptCompare", M.compare, { desc = "Compare with the previous version" })
  vim.api.nvim_create_user_command("PromptRender", M.render, { desc = "Show the rendered prompt" })
  -- an examples file written from Neovim: its prompts are checked again at once
  vim.api.nvim_create_autocmd("BufWritePost", {
    pattern = vim.tbl_map(function(s)
      return "*." .. s
    end, EXAMPLE_SUFFIXES),
    callback = function(args)
      local path = vim.fn.fnamemodify(args.file, ":p")
      for id in pairs(M.client_ids) do
        notify_changed(id, path)
      end
    end,
  })
  -- buffers opened before setup()
  for _, buf in ipairs(vim.api.nvim_list_bufs()) do
    local name = vim.api.nvim_buf_get_name(buf)
    if vim.api.nvim_buf_is_loaded(buf) and (name:match("%.prompt$") or name:match("%.prompty$")) then
      vim.bo[buf].filetype = "prompt"
    end
  end
end

return M
