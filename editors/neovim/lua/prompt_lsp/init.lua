-- prompt-lsp for Neovim: filetype, language server, code lenses and :Prompt* commands.
-- Works on Neovim 0.7 (vim.lsp.start_client) and 0.10+ (vim.lsp.start).
local M = {}

M.config = {
  cmd = nil, -- default: { "prompt-lsp", "serve" }, else { "python3", "-m", "prompt_lsp", "serve" }
  settings = { -- the promptLsp section sent to the server
    defaultModel = nil,
    concurrency = nil,
    cache = true,
    debounce = 150,
  },
  codelens = true, -- refresh code lenses on enter, save and after a run
  root_markers = { ".prompt-lsp", ".git" },
}

local clients = {} -- root dir -> client id (Neovim 0.7 path)

local function default_cmd()
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

local function handlers()
  return {
    ["workspace/codeLens/refresh"] = function(_, _, ctx)
      for _, buf in ipairs(vim.lsp.get_buffers_by_client_id(ctx.client_id)) do
        if vim.api.nvim_buf_is_loaded(buf) then
          vim.api.nvim_buf_call(buf, function()
            vim.lsp.codelens.refresh()
          end)
        end
      end
      return vim.NIL
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

local function client_config(bufnr)
  local root = root_dir(bufnr)
  return {
    name = "prompt-lsp",
    cmd = M.config.cmd or default_cmd(),
    root_dir = root,
    workspace_folders = { { uri = vim.uri_from_fname(root), name = root } },
    init_options = settings(),
    settings = settings(),
    handlers = handlers(),
    flags = { debounce_text_changes = M.config.debounce_text_changes or 150 },
    on_attach = function(client, buf)
      if M.config.codelens then
        vim.api.nvim_create_autocmd({ "BufEnter", "BufWritePost", "InsertLeave" }, {
          buffer = buf,
          callback = function()
            vim.lsp.codelens.refresh()
          end,
        })
        vim.lsp.codelens.refresh()
      end
      if M.config.on_attach then
        M.config.on_attach(client, buf)
      end
    end,
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
  vim.lsp.buf_request(bufnr, "workspace/executeCommand", { command = command, arguments = { argument } }, function(err)
    if err then
      vim.notify("prompt-lsp: " .. (err.message or tostring(err)), vim.log.levels.ERROR)
    end
  end)
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
  -- buffers opened before setup()
  for _, buf in ipairs(vim.api.nvim_list_bufs()) do
    local name = vim.api.nvim_buf_get_name(buf)
    if vim.api.nvim_buf_is_loaded(buf) and (name:match("%.prompt$") or name:match("%.prompty$")) then
      vim.api.nvim_buf_set_option(buf, "filetype", "prompt")
    end
  end
end

return M
