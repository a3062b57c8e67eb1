-- :checkhealth prompt_lsp — is the server found, does it start, is this Neovim supported.
local M = {}

-- Neovim 0.10+ has vim.health.start/ok/...; 0.7–0.9 have require("health").report_*.
local health = vim.health or require("health")
local start = health.start or health.report_start
local ok = health.ok or health.report_ok
local warn = health.warn or health.report_warn
local error = health.error or health.report_error
local info = health.info or health.report_info

function M.check()
  start("prompt-lsp")
  if vim.fn.has("nvim-0.7") == 1 then
    ok("Neovim " .. tostring(vim.version().major) .. "." .. tostring(vim.version().minor) .. " is supported (0.7 or newer)")
  else
    error("Neovim 0.7 or newer is needed")
  end

  local plugin = require("prompt_lsp")
  local cmd = plugin.config.cmd or plugin.default_cmd()
  local executable = cmd[1]
  if vim.fn.executable(executable) ~= 1 then
    error("the server command is not executable: " .. table.concat(cmd, " "), {
      "pip install prompt-lsp (in the Python that is on PATH), or",
      "require('prompt_lsp').setup({ cmd = { '/path/to/venv/bin/prompt-lsp', 'serve' } })",
    })
    return
  end
  ok("server command: " .. table.concat(cmd, " "))
  local version_cmd = vim.list_extend(vim.deepcopy(cmd), {})
  -- `prompt-lsp serve` -> `prompt-lsp --version`; `python -m prompt_lsp serve` -> `… --version`
  if version_cmd[#version_cmd] == "serve" then
    version_cmd[#version_cmd] = "--version"
  end
  local output = vim.fn.system(version_cmd)
  if vim.v.shell_error == 0 then
    ok("the server runs: " .. vim.trim(output))
  else
    error("the server does not run: " .. vim.trim(output))
  end

  local running = 0
  for id in pairs(plugin.client_ids) do
    if vim.lsp.get_client_by_id(id) then
      running = running + 1
    end
  end
  info(running .. " prompt-lsp client(s) running in this session")
  if pcall(require, "cmp_nvim_lsp") then
    ok("nvim-cmp: completion comes through cmp-nvim-lsp")
  else
    info("nvim-cmp not installed: <C-x><C-o> completes ('omnifunc' is set by the plugin)")
  end
  if not plugin.config.codelens then
    warn("codelens = false: Evaluate is reachable as :PromptEvaluate or a code action only")
  end
end

return M
