from prompt_lsp.cli import main

raise SystemExit(main())
