;;; session.el --- Emacs 28 + eglot, batch: the README setup, then what a user checks  -*- lexical-binding: t; -*-
;; emacs -Q --batch -l session.el   with PROMPT_LSP_EMACS_DIR, PROMPT_FILE, PROMPT_LSP_PYTHON set.
;; Prints "step ok" lines on stderr; exits 1 with "FAIL: ..." at the first failure.
;; PROMPT_LSP_EVALUATE=1 runs Evaluate through its code action instead (the embedded model).

;; The README snippet, as written there:
(require 'package)
;; Emacs 28: eglot is a package (Emacs 29+ has it built in). Debian's elpa-eglot is in this
;; folder, which `emacs -Q' does not look in; a package.el install is found without it.
(add-to-list 'package-directory-list "/usr/share/emacs/site-lisp/elpa")
(package-initialize)
(require 'eglot)
(add-to-list 'load-path (getenv "PROMPT_LSP_EMACS_DIR"))
(require 'prompt-mode)
(add-hook 'prompt-mode-hook #'eglot-ensure)
;; this checkout's server (a user's is `prompt-lsp serve' on PATH)
(setq prompt-server-command (list (getenv "PROMPT_LSP_PYTHON") "-m" "prompt_lsp" "serve"))

(defvar session-messages nil "Every message shown, newest first.")
(advice-add 'message :before
            (lambda (format &rest args)
              (when format (push (apply #'format-message format args) session-messages))))

(defun fail (fmt &rest args)
  (princ (concat "FAIL: " (apply #'format fmt args) "\n") #'external-debugging-output)
  (kill-emacs 1))

(defun note (fmt &rest args)
  (princ (concat (apply #'format fmt args) "\n") #'external-debugging-output))

(defun wait-for (what seconds predicate)
  "Run the event loop until PREDICATE is non-nil (its value is returned), or fail."
  (let ((deadline (+ (float-time) seconds)) value)
    (while (and (not (setq value (funcall predicate))) (< (float-time) deadline))
      (accept-process-output nil 0.1)
      (sit-for 0.05))
    (or value (fail "timed out after %ss waiting for %s" seconds what))))

(find-file (getenv "PROMPT_FILE"))
(unless (eq major-mode 'prompt-mode) (fail "major mode is %s" major-mode))
;; eglot-ensure connects from post-command-hook, which batch mode never runs
(run-hooks 'post-command-hook)
(wait-for "the server" 60 #'eglot-current-server)
(wait-for "eglot to manage the buffer" 30 (lambda () (bound-and-true-p eglot--managed-mode)))
(note "server ok")

(defun editing-checks ()
;; 1. diagnostics (flymake, fed by eglot)
(let ((found (wait-for "the undefined-variable diagnostic" 30
                       (lambda ()
                         (flymake-start)
                         (cl-find-if (lambda (d) (string-match-p "mood" (flymake-diagnostic-text d)))
                                     (flymake-diagnostics))))))
  (note "diagnostic: %s" (flymake-diagnostic-text found))
  (note "diagnostics ok"))

;; 2. completion at point on C-M-i (not ispell), inserting what the user means
(unless (eq (key-binding (kbd "C-M-i")) 'completion-at-point)
  (fail "C-M-i runs %s" (key-binding (kbd "C-M-i"))))
(goto-char (point-max))
(insert "\nAgain: {{ to")
(eglot--signal-textDocument/didChange)
(call-interactively (key-binding (kbd "C-M-i")))
(let ((line (buffer-substring (line-beginning-position) (line-end-position))))
  (note "completed line: %s" line)
  (unless (string= line "Again: {{ topic }}") (fail "C-M-i gave %S" line)))
(note "completion ok")
(delete-region (line-beginning-position 0) (point-max))
(eglot--signal-textDocument/didChange)

;; 3. hover: plaintext, as eglot asked (no markdown-mode under -Q)
(goto-char (point-min))
(search-forward "{{ topic")
(backward-char 2)
(let* ((hover (jsonrpc-request (eglot-current-server) :textDocument/hover
                               (eglot--TextDocumentPositionParams)))
       (contents (plist-get hover :contents)))
  (unless (equal (plist-get contents :kind) "plaintext")
    (fail "hover kind %S" (plist-get contents :kind)))
  (let ((text (plist-get contents :value)))
    (note "hover: %s" (replace-regexp-in-string "\n" " | " text))
    (when (string-match-p "\\*\\*\\|`" text) (fail "markdown in a plaintext hover: %S" text))
    (unless (string-match-p "topic" text) (fail "hover does not name the variable: %S" text))))
;; the hover on the first line names the action eglot offers (no code lens here)
(goto-char (point-min))
(let* ((hover (jsonrpc-request (eglot-current-server) :textDocument/hover
                               (eglot--TextDocumentPositionParams)))
       (text (plist-get (plist-get hover :contents) :value)))
  (note "first-line hover: %s" (replace-regexp-in-string "\n" " | " text))
  (when (string-match-p "above" text) (fail "the hover points at a lens: %S" text))
  (unless (string-match-p "code action" text) (fail "the hover names no action: %S" text)))
(note "hover ok")

;; 4. the run commands are code actions
(let ((titles (mapcar (lambda (a) (plist-get a :title))
                      (eglot-code-actions (point-min) (point-max)))))
  (note "code actions: %s" (string-join titles ", "))
  (dolist (wanted '("Evaluate this prompt" "Compare with the previous version" "Show rendered prompt"
                    "Declare 'mood' in input.schema (optional)"))
    (unless (member wanted titles) (fail "no %S code action" wanted))))
(note "code actions ok"))

(if (equal (getenv "PROMPT_LSP_EVALUATE") "1")
    (progn
      (setq session-messages nil)
      (prompt-evaluate)
      (wait-for "the start message" 30
                (lambda () (cl-find-if (lambda (m) (string-match-p "Evaluating " m)) session-messages)))
      (let ((score (wait-for "the score message" 300
                             (lambda () (cl-find-if (lambda (m) (string-match-p "rougeL [0-9]" m))
                                                    session-messages)))))
        (note "score message: %s" score))
      (note "evaluate ok"))
  (editing-checks))

(kill-emacs 0)
