# Regenerates rules_python.json with Python in-toto 1.3.1: cd testdata && /usr/bin/python3 gen_rules_python.py
import json, random, logging
logging.disable(logging.CRITICAL)
from in_toto.models.link import Link
from in_toto.models.metadata import Metablock
from in_toto import verifylib
from in_toto.exceptions import RuleVerificationError

random.seed(7)
PATHS = ["a", "b.c", "d/e.c", "d/f.txt", "src/a", "src/d/e.c", "out/a", "out/b.c", "x\\y", "[a]", "ä.c", "a/"]
H = [{"sha256": "11"}, {"sha256": "22"}, {"sha256": "11", "sha512": "33"}]
PATS = ["*", "*.c", "d/*", "?", "a", "b.c", "[ab]*", "[!a]*", "*/*", "src/*", "e.c", "*a*", "[", "x*"]
def arts():
    return {p: random.choice(H) for p in random.sample(PATHS, random.randint(0, 6))}
def rule():
    k = random.choice(["MATCH"] * 4 + ["CREATE", "DELETE", "MODIFY", "ALLOW", "DISALLOW", "DISALLOW", "REQUIRE"])
    pat = random.choice(PATS)
    if k == "REQUIRE":
        return ["REQUIRE", random.choice(PATHS)]
    if k != "MATCH":
        return [k, pat]
    r = ["MATCH", pat]
    if random.random() < 0.3: r += ["IN", random.choice(["src", "d", "out/", "src/d"])]
    r += ["WITH", random.choice(["MATERIALS", "PRODUCTS"])]
    if random.random() < 0.3: r += ["IN", random.choice(["src", "out", "d/"])]
    r += ["FROM", random.choice(["dst", "dst", "nowhere"])]
    return r
cases = []
while len(cases) < 800:
    src = Link(name="src", materials=arts(), products=arts())
    dst = Link(name="dst", materials=arts(), products=arts())
    rules = [rule() for _ in range(random.randint(1, 4))]
    side = random.choice(["materials", "products"])
    links = {"src": Metablock(signed=src), "dst": Metablock(signed=dst)}
    try:
        verifylib.verify_item_rules("src", side, rules, links)
        res = "pass"
    except RuleVerificationError:
        res = "fail"
    except Exception as e:   # Python crashes (e.g. KeyError on backslash paths)
        res = "error"
    cases.append({"src_m": src.materials, "src_p": src.products, "dst_m": dst.materials, "dst_p": dst.products,
                  "rules": rules, "side": side, "result": res})
print(sum(c["result"] == "pass" for c in cases), sum(c["result"] == "fail" for c in cases), sum(c["result"] == "error" for c in cases))
json.dump(cases, open("rules_python.json", "w"), ensure_ascii=False, separators=(",", ":"))
