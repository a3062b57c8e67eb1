" prompt-lsp: YAML front matter, Jinja2 body, role markers and special tokens.
if exists("b:current_syntax")
  finish
endif

syntax include @promptYaml syntax/yaml.vim
unlet! b:current_syntax
syntax region promptFrontMatter start=/\%^---\s*$/ end=/^---\s*$/ keepend contains=@promptYaml

syntax match promptRole /^\s*\c\(system\|user\|assistant\):\s*$/
syntax match promptToken /<|[^|<> \t]\+|>/
syntax match promptToken /<\/\?\(start\|end\|s\|start_of_turn\|end_of_turn\|bos\|eos\)>/
syntax match promptToken /\[\/\?\(INST\|CLS\|SEP\|MASK\|PAD\|UNK\)\]/
syntax match promptToken /<<\/\?SYS>>/

syntax region promptJinjaComment start=/{#/ end=/#}/
syntax region promptJinjaExpr matchgroup=promptJinjaDelim start=/{{-\?/ end=/-\?}}/ contains=promptJinjaString,promptJinjaFilter,promptJinjaNumber
syntax region promptJinjaStmt matchgroup=promptJinjaDelim start=/{%-\?/ end=/-\?%}/ contains=promptJinjaKeyword,promptJinjaString,promptJinjaFilter,promptJinjaNumber
syntax keyword promptJinjaKeyword contained if elif else endif for endfor in not and or is set endset macro endmacro call endcall filter endfilter raw endraw with endwith include import from as recursive
syntax match promptJinjaFilter contained /|\s*\w\+/
syntax region promptJinjaString contained start=/"/ skip=/\\"/ end=/"/
syntax region promptJinjaString contained start=/'/ skip=/\\'/ end=/'/
syntax match promptJinjaNumber contained /\<\d\+\(\.\d\+\)\?\>/

highlight default link promptRole Statement
highlight default link promptToken Special
highlight default link promptJinjaComment Comment
highlight default link promptJinjaDelim Delimiter
highlight default link promptJinjaExpr Identifier
highlight default link promptJinjaKeyword Keyword
highlight default link promptJinjaFilter Function
highlight default link promptJinjaString String
highlight default link promptJinjaNumber Number

let b:current_syntax = "prompt"
