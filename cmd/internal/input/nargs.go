package input

import "strings"

// multiValueFlags take several values after one flag in Python in-toto (argparse
// nargs="+"): `-m a b c`. pflag takes one value per flag, so such runs are rewritten to
// `-m a -m b -m c` before cobra parses them.
var multiValueFlags = map[string]map[string]bool{
	"run":    {"-m": true, "--materials": true, "-p": true, "--products": true, "--exclude": true, "--lstrip-paths": true},
	"record": {"-m": true, "--materials": true, "-p": true, "--products": true, "--exclude": true, "--lstrip-paths": true},
	"verify": {"-k": true, "--layout-keys": true},
}

// ExpandNargs rewrites multi-value flags of the run, record and verify commands. Values
// continue up to the next argument starting with "-" or the "--" that ends flags.
func ExpandNargs(args []string) []string {
	if len(args) == 0 {
		return args
	}
	flags := multiValueFlags[args[0]]
	if flags == nil {
		return args
	}
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		out = append(out, a)
		if a == "--" {
			return append(out, args[i+1:]...)
		}
		if !flags[a] {
			continue
		}
		// The flag's first value is taken as is; further bare words repeat the flag.
		if i+1 < len(args) {
			i++
			out = append(out, args[i])
		}
		for i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			i++
			out = append(out, a, args[i])
		}
	}
	return out
}
