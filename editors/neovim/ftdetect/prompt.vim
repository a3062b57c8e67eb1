autocmd BufRead,BufNewFile *.prompt,*.prompty setfiletype prompt
