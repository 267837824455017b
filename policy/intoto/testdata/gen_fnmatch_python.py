# Regenerates fnmatch_python311.json: cd testdata && /usr/bin/python3 gen_fnmatch_python.py
import fnmatch, json, itertools
pats = ["*", "*.c", "src/*", "src/*.c", "a?c", "[abc]x", "[!abc]x", "[a-c]x", "[!a-c]x", "[]]x", "[!]]x", "[!]", "[", "a[", "[a-]x", "[-a]x",
 "[z-a]x", "[!z-a]x", "[a-c-e]x", "[c-b-a]x", "[!b-a-z]x", "[^a]x", "[[]x", "[\\]x", "*a*b*c", "**", "a*", "*/*", "?", "??", "a/**/b",
 "foo.tar.gz", "*.tar.gz", "[0-9][0-9]*", "dir/[!.]*", "a*b?c*", "ü*", "[äöü]", "[a-z]*[0-9]", "*[!/]", "a]b", "[!-]x", "[--0]x", "[a-]"]
names = ["", "a", "abc", "a.c", "src/a.c", "src/sub/b.c", "ax", "bx", "dx", "]x", "-x", "^x", "[x", "\\x", "zx", "ex", "cx", "aXbYc", "abc/d",
 "a/b", "a/x/y/b", "foo.tar.gz", "x/foo.tar.gz", "12abc", "dir/.hidden", "dir/visible", "a-b.c", "üx", "ä", "q9", "a/", "a]b", "/x", "0x", "[!]", "[", "a[", "a-"]
rows=[]
for p in pats:
  for n in names:
    rows.append((p,n,fnmatch.fnmatchcase(n,p)))
print(len(rows))
with open("fnmatch_python311.json","w") as f: json.dump(rows,f, ensure_ascii=False)
