;;; prompt-mode.el --- Major mode for .prompt files, with the prompt-lsp server  -*- lexical-binding: t; -*-

;; Version: 0.1.0
;; Package-Requires: ((emacs "28.1") (eglot "1.9"))
;; Keywords: languages, tools
;; URL: https://github.com/prompt-lsp/prompt-lsp

;;; Commentary:

;; `prompt-mode' edits prompt files (YAML front matter + a Jinja2 template): highlighting of the
;; front matter keys, role markers and `{{ }}' / `{% %}' / `{# #}', and the prompt-lsp language
;; server through eglot.  Completion is `completion-at-point' (C-M-i), so the mode derives from
;; `prog-mode', not `text-mode' (whose C-M-i runs ispell).
;;
;; The server's run commands are code actions (eglot has no code lenses):
;;   C-c C-e  `prompt-evaluate'      score the prompt on its examples (the score is shown as a
;;                                   message when the run ends; progress goes to the echo area)
;;   C-c C-c  `prompt-compare'       compare with the previously evaluated version
;;   C-c C-k  `prompt-cancel'        cancel the running evaluation
;;   C-c C-r  `prompt-show-rendered' the prompt rendered with its first example
;; `M-x eglot-code-actions' lists them with the quick fixes.
;;
;; Setup (also under emacs -Q):
;;   (require 'package)
;;   (add-to-list 'package-directory-list "/usr/share/emacs/site-lisp/elpa") ; Debian's elpa-eglot
;;   (package-initialize)
;;   (require 'eglot)            ; built in from Emacs 29
;;   (add-to-list 'load-path "/path/to/prompt-lsp/editors/emacs")
;;   (require 'prompt-mode)
;;   (add-hook 'prompt-mode-hook #'eglot-ensure)

;;; Code:

(require 'eglot)

(defgroup prompt nil
  "Prompt files and the prompt-lsp language server."
  :group 'languages
  :prefix "prompt-")

(defcustom prompt-server-command '("prompt-lsp" "serve")
  "Command that starts the language server, e.g. (\"~/venv/bin/prompt-lsp\" \"serve\")."
  :type '(repeat string))

(defface prompt-role-face '((t :inherit font-lock-keyword-face :weight bold))
  "Face of role markers such as `system:'.")

(defface prompt-delimiter-face '((t :inherit font-lock-preprocessor-face))
  "Face of the template delimiters {{ }}, {% %}.")

(defconst prompt--font-lock-keywords
  `(;; the front matter fences and its keys
    ("\\`---$" . font-lock-comment-delimiter-face)
    ("^---$" . font-lock-comment-delimiter-face)
    ("^\\s-*\\(?:- \\)?\\([A-Za-z_][A-Za-z0-9_?]*\\):\\(?:\\s-\\|$\\)" 1 font-lock-variable-name-face)
    ;; role markers: a line holding only `system:', `user:' or `assistant:'
    ("^\\(?:[Ss]ystem\\|[Uu]ser\\|[Aa]ssistant\\):\\s-*$" . 'prompt-role-face)
    ;; comments {# ... #}
    ("{#\\(?:.\\|\n\\)*?#}" 0 font-lock-comment-face t)
    ;; {% tag ... %}
    ("\\({%-?\\)\\s-*\\([a-z]+\\)" (1 'prompt-delimiter-face) (2 font-lock-keyword-face))
    ("-?%}" . 'prompt-delimiter-face)
    ;; {{ name ... }}
    ("\\({{-?\\)\\s-*\\([A-Za-z_][A-Za-z0-9_]*\\)?"
     (1 'prompt-delimiter-face) (2 font-lock-variable-name-face nil t))
    ("-?}}" . 'prompt-delimiter-face)
    ;; filters: | name
    ("|\\s-*\\([A-Za-z_][A-Za-z0-9_]*\\)" 1 font-lock-function-name-face)
    ;; special tokens such as <start_of_turn>, <|im_start|>, [INST]
    ("<|?/?[A-Za-z_][A-Za-z0-9_|]*>\\|\\[/?INST\\]" . font-lock-constant-face))
  "Highlighting for `prompt-mode'.")

(defvar prompt-mode-syntax-table
  (let ((table (make-syntax-table)))
    (modify-syntax-entry ?\" "." table) ; prose: quotes are punctuation, not strings
    (modify-syntax-entry ?' "." table)
    (modify-syntax-entry ?_ "_" table)
    table)
  "Syntax table of `prompt-mode'.")

(defvar prompt-mode-map
  (let ((map (make-sparse-keymap)))
    (define-key map (kbd "C-M-i") #'completion-at-point)
    (define-key map (kbd "C-c C-e") #'prompt-evaluate)
    (define-key map (kbd "C-c C-c") #'prompt-compare)
    (define-key map (kbd "C-c C-k") #'prompt-cancel)
    (define-key map (kbd "C-c C-r") #'prompt-show-rendered)
    map)
  "Keymap of `prompt-mode'.")

;;;###autoload
(define-derived-mode prompt-mode prog-mode "Prompt"
  "Major mode for prompt files: YAML front matter and a Jinja2 template.
\\{prompt-mode-map}"
  (setq-local font-lock-defaults '(prompt--font-lock-keywords t))
  (setq-local font-lock-multiline t)
  (setq-local comment-start "{# ")
  (setq-local comment-end " #}")
  (setq-local indent-tabs-mode nil))

;;;###autoload
(add-to-list 'auto-mode-alist '("\\.prompty?\\'" . prompt-mode))

(add-to-list 'eglot-server-programs
             `(prompt-mode . ,(lambda (&optional _interactive) prompt-server-command)))

(defun prompt--run-action (kind what)
  "Run the server's code action of KIND on the whole buffer; WHAT names it in errors."
  (unless (eglot-current-server)
    (user-error "No prompt-lsp server for this buffer: M-x eglot first"))
  (condition-case err
      (eglot-code-actions (point-min) (point-max) kind t)
    (error (user-error "Cannot %s: %s" what (error-message-string err)))))

(defun prompt-evaluate ()
  "Evaluate this prompt on its examples (the server's Evaluate code action)."
  (interactive)
  (prompt--run-action "source.promptLsp.evaluate" "evaluate"))

(defun prompt-compare ()
  "Compare this version's scores with the previous version's."
  (interactive)
  (prompt--run-action "source.promptLsp.compare" "compare"))

(defun prompt-cancel ()
  "Cancel the running evaluation of this prompt."
  (interactive)
  (prompt--run-action "source.promptLsp.cancel" "cancel"))

(defun prompt-show-rendered ()
  "Show this prompt rendered with its first example."
  (interactive)
  (prompt--run-action "source.promptLsp.showRendered" "show the rendered prompt"))

(provide 'prompt-mode)
;;; prompt-mode.el ends here
